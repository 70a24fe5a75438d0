-- One row per user, active day and brand touched in the 90 days up to that day: the weighted
-- interest (view 1, cart 3, purchase 5), its share of the user's total and its rank.
{{ trailing_interest(ref('fct_events'), 'brand', 'brand_rank') }}
