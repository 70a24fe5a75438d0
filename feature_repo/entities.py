"""Entities: user, product, category and day (the calendar)."""

from _definitions import DEFINITIONS

user = DEFINITIONS.entities["user"]
product = DEFINITIONS.entities["product"]
category = DEFINITIONS.entities["category"]
day = DEFINITIONS.entities["day"]
