-- One row per user, active day and top-level category touched in the 90 days up to that day:
-- the weighted interest (view 1, cart 3, purchase 5) and its share of the user's total.
with

events as (

    select * from {{ ref('fct_events') }}

),

user_days as (

    select distinct
        user_id,
        day_num
    from events

),

category_days as (

    select
        user_id,
        day_num,
        category_l1,
        sum(event_weight) as weight

    from events
    group by 1, 2, 3

),

trailing_scores as (

    select
        user_days.user_id,
        user_days.day_num,
        category_days.category_l1,
        sum(category_days.weight) as score_90d

    from user_days
    inner join category_days
        on
            user_days.user_id = category_days.user_id
            and category_days.day_num between user_days.day_num - 89 and user_days.day_num
    group by 1, 2, 3

),

final as (

    select
        *,
        score_90d / sum(score_90d) over (partition by user_id, day_num) as share_90d,
        row_number() over (
            partition by user_id, day_num order by score_90d desc, category_l1 asc
        ) as category_rank

    from trailing_scores

)

select * from final
