-- One row per product per day with activity: event counts and revenue.
with

events as (

    select * from {{ ref('fct_events') }}

),

final as (

    select
        product_id,
        activity_date,
        day_num,
        sum(case when event_type = 'view' then 1 else 0 end) as n_views,
        sum(case when event_type = 'cart' then 1 else 0 end) as n_carts,
        sum(case when event_type = 'purchase' then 1 else 0 end) as n_purchases,
        sum(revenue) as revenue

    from events
    group by 1, 2, 3

)

select * from final
