"""Entities: user, product, category, day (join keys user_id, product_id, category_l1, calendar_date)."""

from _definitions import DEFINITIONS

user = DEFINITIONS.entities["user"]
product = DEFINITIONS.entities["product"]
category = DEFINITIONS.entities["category"]
day = DEFINITIONS.entities["day"]
