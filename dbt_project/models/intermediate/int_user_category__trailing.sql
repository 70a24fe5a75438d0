-- One row per user, active day and top-level category touched in the 90 days up to that day:
-- the weighted interest (view 1, cart 3, purchase 5) and its share of the user's total.
{{ trailing_interest(ref('fct_events'), 'category_l1', 'category_rank') }}
