-- One row per user per day with activity: event counts, orders, revenue, price level.
with

events as (

    select * from {{ ref('fct_events') }}

),

final as (

    select
        user_id,
        activity_date,
        day_num,
        sum(case when event_type = 'view' then 1 else 0 end) as n_views,
        sum(case when event_type = 'cart' then 1 else 0 end) as n_carts,
        sum(case when event_type = 'purchase' then 1 else 0 end) as n_purchases,
        count(distinct session_id) as n_sessions,
        count(distinct case when event_type = 'purchase' then session_id end) as n_orders,
        sum(revenue) as revenue,
        sum(price_rel_category) as sum_price_rel_category,
        count(price_rel_category) as n_priced_events

    from events
    group by 1, 2, 3

)

select * from final
