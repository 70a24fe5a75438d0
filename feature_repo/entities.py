"""Entities: user, product, category, brand and day (the calendar)."""

from _definitions import DEFINITIONS

user = DEFINITIONS.entities["user"]
product = DEFINITIONS.entities["product"]
category = DEFINITIONS.entities["category"]
brand = DEFINITIONS.entities["brand"]
day = DEFINITIONS.entities["day"]
