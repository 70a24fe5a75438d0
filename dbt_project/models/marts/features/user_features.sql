-- One row per user per snapshot: a snapshot at sign-up (profile only, no history) and one at
-- the end of every day with activity (available from the next midnight, so a point-in-time
-- join never sees the day it is still in). Trailing windows count the days up to the snapshot.
with

users as (

    select * from {{ ref('stg_users') }}

),

daily as (

    select * from {{ ref('int_users__daily') }}

),

top_category as (

    select * from {{ ref('int_user_category__trailing') }}
    where category_rank = 1

),

top_brand as (

    select * from {{ ref('int_user_brand__trailing') }}
    where brand_rank = 1

),

windowed as (

    select
        user_id,
        day_num,
        activity_date,
        n_views as views_1d,
        {{ trailing_sum('n_views', 'user_id', 7) }} as views_7d,
        {{ trailing_sum('n_views', 'user_id', 30) }} as views_30d,
        {{ trailing_sum('n_views', 'user_id', 90) }} as views_90d,
        n_carts as carts_1d,
        {{ trailing_sum('n_carts', 'user_id', 7) }} as carts_7d,
        {{ trailing_sum('n_carts', 'user_id', 30) }} as carts_30d,
        {{ trailing_sum('n_carts', 'user_id', 90) }} as carts_90d,
        n_purchases as purchases_1d,
        {{ trailing_sum('n_purchases', 'user_id', 7) }} as purchases_7d,
        {{ trailing_sum('n_purchases', 'user_id', 30) }} as purchases_30d,
        {{ trailing_sum('n_purchases', 'user_id', 90) }} as purchases_90d,
        {{ running_sum('n_views + n_carts + n_purchases', 'user_id') }} as events_total,
        {{ running_sum('n_carts', 'user_id') }} as carts_total,
        {{ running_sum('n_purchases', 'user_id') }} as purchases_total,
        {{ running_sum('n_orders', 'user_id') }} as orders_total,
        {{ running_sum('n_sessions', 'user_id') }} as sessions_total,
        {{ running_sum('revenue', 'user_id') }} as revenue_total,
        {{ running_sum('1', 'user_id') }} as active_days_total,
        max(case when n_purchases > 0 then day_num end) over (
            partition by user_id order by day_num
            rows between unbounded preceding and current row
        ) as last_purchase_day_num,
        lag(day_num) over (partition by user_id order by day_num) as previous_day_num,
        {{ safe_divide(
            trailing_sum('sum_price_rel_category', 'user_id', 90),
            trailing_sum('n_priced_events', 'user_id', 90)
        ) }} as avg_price_rel_category_90d

    from daily

),

activity_snapshots as (

    select
        windowed.user_id,
        cast({{ dbt.dateadd('day', 1, 'windowed.activity_date') }} as {{ dbt.type_timestamp() }})
            as event_timestamp,
        windowed.day_num + 1 as snapshot_day_num,
        1 as has_history,
        windowed.views_1d,
        windowed.views_7d,
        windowed.views_30d,
        windowed.views_90d,
        windowed.carts_1d,
        windowed.carts_7d,
        windowed.carts_30d,
        windowed.carts_90d,
        windowed.purchases_1d,
        windowed.purchases_7d,
        windowed.purchases_30d,
        windowed.purchases_90d,
        windowed.events_total,
        windowed.purchases_total,
        windowed.orders_total,
        windowed.sessions_total,
        windowed.active_days_total,
        windowed.revenue_total,
        {{ safe_divide('windowed.revenue_total', 'windowed.orders_total') }} as avg_order_value,
        {{ capped_rate('windowed.purchases_total', 'windowed.carts_total') }}
            as cart_to_purchase_rate,
        windowed.day_num - windowed.previous_day_num as days_since_previous_active_day,
        windowed.day_num + 1 - windowed.last_purchase_day_num as days_since_last_purchase,
        top_category.category_l1 as top_category_l1_90d,
        top_category.share_90d as top_category_share_90d,
        top_brand.brand as top_brand_90d,
        top_brand.share_90d as top_brand_share_90d,
        windowed.avg_price_rel_category_90d

    from windowed
    left join top_category
        on windowed.user_id = top_category.user_id and windowed.day_num = top_category.day_num
    left join top_brand
        on windowed.user_id = top_brand.user_id and windowed.day_num = top_brand.day_num

),

signup_snapshots as (

    select
        user_id,
        case
            when signup_at < {{ var_timestamp('data_start') }} then {{ var_timestamp('data_start') }}
            else signup_at
        end as event_timestamp

    from users
    where signup_at < {{ var_timestamp('data_end') }}

),

snapshots as (

    select * from activity_snapshots

    union all

    select
        user_id,
        event_timestamp,
        {{ day_number('event_timestamp') }} as snapshot_day_num,
        0 as has_history,
        0 as views_1d,
        0 as views_7d,
        0 as views_30d,
        0 as views_90d,
        0 as carts_1d,
        0 as carts_7d,
        0 as carts_30d,
        0 as carts_90d,
        0 as purchases_1d,
        0 as purchases_7d,
        0 as purchases_30d,
        0 as purchases_90d,
        0 as events_total,
        0 as purchases_total,
        0 as orders_total,
        0 as sessions_total,
        0 as active_days_total,
        0.0 as revenue_total,
        null as avg_order_value,
        null as cart_to_purchase_rate,
        null as days_since_previous_active_day,
        null as days_since_last_purchase,
        null as top_category_l1_90d,
        null as top_category_share_90d,
        null as top_brand_90d,
        null as top_brand_share_90d,
        null as avg_price_rel_category_90d

    from signup_snapshots

),

final as (

    select
        snapshots.user_id,
        snapshots.event_timestamp,
        cast(snapshots.has_history as {{ dbt.type_bigint() }}) as has_history,
        cast(snapshots.views_1d as {{ dbt.type_bigint() }}) as views_1d,
        cast(snapshots.views_7d as {{ dbt.type_bigint() }}) as views_7d,
        cast(snapshots.views_30d as {{ dbt.type_bigint() }}) as views_30d,
        cast(snapshots.views_90d as {{ dbt.type_bigint() }}) as views_90d,
        cast(snapshots.carts_1d as {{ dbt.type_bigint() }}) as carts_1d,
        cast(snapshots.carts_7d as {{ dbt.type_bigint() }}) as carts_7d,
        cast(snapshots.carts_30d as {{ dbt.type_bigint() }}) as carts_30d,
        cast(snapshots.carts_90d as {{ dbt.type_bigint() }}) as carts_90d,
        cast(snapshots.purchases_1d as {{ dbt.type_bigint() }}) as purchases_1d,
        cast(snapshots.purchases_7d as {{ dbt.type_bigint() }}) as purchases_7d,
        cast(snapshots.purchases_30d as {{ dbt.type_bigint() }}) as purchases_30d,
        cast(snapshots.purchases_90d as {{ dbt.type_bigint() }}) as purchases_90d,
        cast(snapshots.events_total as {{ dbt.type_bigint() }}) as events_total,
        cast(snapshots.purchases_total as {{ dbt.type_bigint() }}) as purchases_total,
        cast(snapshots.orders_total as {{ dbt.type_bigint() }}) as orders_total,
        cast(snapshots.sessions_total as {{ dbt.type_bigint() }}) as sessions_total,
        cast(snapshots.active_days_total as {{ dbt.type_bigint() }}) as active_days_total,
        cast(snapshots.revenue_total as {{ type_double() }}) as revenue_total,
        cast(snapshots.avg_order_value as {{ type_double() }}) as avg_order_value,
        cast(snapshots.cart_to_purchase_rate as {{ type_double() }}) as cart_to_purchase_rate,
        cast(snapshots.days_since_previous_active_day as {{ dbt.type_bigint() }})
            as days_since_previous_active_day,
        cast(snapshots.days_since_last_purchase as {{ dbt.type_bigint() }})
            as days_since_last_purchase,
        cast(snapshots.top_category_l1_90d as {{ dbt.type_string() }}) as top_category_l1_90d,
        cast(snapshots.top_category_share_90d as {{ type_double() }})
            as top_category_share_90d,
        cast(snapshots.top_brand_90d as {{ dbt.type_string() }}) as top_brand_90d,
        cast(snapshots.top_brand_share_90d as {{ type_double() }}) as top_brand_share_90d,
        cast(snapshots.avg_price_rel_category_90d as {{ type_double() }})
            as avg_price_rel_category_90d,
        case
            when snapshots.avg_price_rel_category_90d is null then 'unknown'
            when snapshots.avg_price_rel_category_90d < 0.8 then 'budget'
            when snapshots.avg_price_rel_category_90d > 1.25 then 'premium'
            else 'mid'
        end as price_band,
        cast(
            snapshots.snapshot_day_num - {{ day_number('users.signup_at') }}
            as {{ dbt.type_bigint() }}
        ) as days_since_signup,
        users.age_band,
        users.region,
        users.device_preference

    from snapshots
    inner join users on snapshots.user_id = users.user_id

)

select * from final
