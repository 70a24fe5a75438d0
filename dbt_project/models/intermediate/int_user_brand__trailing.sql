-- One row per user, active day and brand touched in the 90 days up to that day: the weighted
-- interest (view 1, cart 3, purchase 5), its share of the user's total and its rank.
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

brand_days as (

    select
        user_id,
        day_num,
        brand,
        sum(event_weight) as weight

    from events
    group by 1, 2, 3

),

trailing_scores as (

    select
        user_days.user_id,
        user_days.day_num,
        brand_days.brand,
        sum(brand_days.weight) as score_90d

    from user_days
    inner join brand_days
        on
            user_days.user_id = brand_days.user_id
            and brand_days.day_num between user_days.day_num - 89 and user_days.day_num
    group by 1, 2, 3

),

final as (

    select
        *,
        score_90d / sum(score_90d) over (partition by user_id, day_num) as share_90d,
        row_number() over (
            partition by user_id, day_num order by score_90d desc, brand asc
        ) as brand_rank

    from trailing_scores

)

select * from final
