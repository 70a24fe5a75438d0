-- One row per product per snapshot: a snapshot at launch (catalog attributes, no history) and
-- one at the end of every day with activity (available from the next midnight). Trailing
-- windows count the days up to the snapshot; rates are over the trailing 30 days.
with

products as (

    select * from {{ ref('int_products__priced') }}

),

daily as (

    select * from {{ ref('int_products__daily') }}

),

windowed as (

    select
        product_id,
        day_num,
        activity_date,
        n_views as views_1d,
        {{ trailing_sum('n_views', 'product_id', 7) }} as views_7d,
        {{ trailing_sum('n_views', 'product_id', 30) }} as views_30d,
        {{ trailing_sum('n_carts', 'product_id', 7) }} as carts_7d,
        {{ trailing_sum('n_carts', 'product_id', 30) }} as carts_30d,
        {{ trailing_sum('n_purchases', 'product_id', 7) }} as purchases_7d,
        {{ trailing_sum('n_purchases', 'product_id', 30) }} as purchases_30d,
        {{ trailing_sum('revenue', 'product_id', 30) }} as revenue_30d,
        {{ running_sum('n_views', 'product_id') }} as views_total,
        {{ running_sum('n_purchases', 'product_id') }} as purchases_total

    from daily

),

activity_snapshots as (

    select
        product_id,
        cast({{ dbt.dateadd('day', 1, 'activity_date') }} as {{ dbt.type_timestamp() }})
            as event_timestamp,
        day_num + 1 as snapshot_day_num,
        1 as has_history,
        views_1d,
        views_7d,
        views_30d,
        carts_7d,
        carts_30d,
        purchases_7d,
        purchases_30d,
        revenue_30d,
        views_total,
        purchases_total,
        {{ capped_rate('carts_30d', 'views_30d') }} as view_to_cart_rate_30d,
        {{ capped_rate('purchases_30d', 'carts_30d') }} as cart_to_purchase_rate_30d,
        {{ capped_rate('purchases_30d', 'views_30d') }} as view_to_purchase_rate_30d,
        {{ safe_divide('views_7d', 'views_30d') }} as views_7d_share_of_30d

    from windowed

),

launch_snapshots as (

    select
        product_id,
        case
            when launched_at < {{ var_timestamp('data_start') }}
                then {{ var_timestamp('data_start') }}
            else launched_at
        end as event_timestamp

    from products
    where launched_at < {{ var_timestamp('data_end') }}

),

snapshots as (

    select * from activity_snapshots

    union all

    select
        product_id,
        event_timestamp,
        {{ day_number('event_timestamp') }} as snapshot_day_num,
        0 as has_history,
        0 as views_1d,
        0 as views_7d,
        0 as views_30d,
        0 as carts_7d,
        0 as carts_30d,
        0 as purchases_7d,
        0 as purchases_30d,
        0.0 as revenue_30d,
        0 as views_total,
        0 as purchases_total,
        null as view_to_cart_rate_30d,
        null as cart_to_purchase_rate_30d,
        null as view_to_purchase_rate_30d,
        null as views_7d_share_of_30d

    from launch_snapshots

),

final as (

    select
        snapshots.product_id,
        snapshots.event_timestamp,
        cast(snapshots.has_history as {{ dbt.type_bigint() }}) as has_history,
        cast(snapshots.views_1d as {{ dbt.type_bigint() }}) as views_1d,
        cast(snapshots.views_7d as {{ dbt.type_bigint() }}) as views_7d,
        cast(snapshots.views_30d as {{ dbt.type_bigint() }}) as views_30d,
        cast(snapshots.carts_7d as {{ dbt.type_bigint() }}) as carts_7d,
        cast(snapshots.carts_30d as {{ dbt.type_bigint() }}) as carts_30d,
        cast(snapshots.purchases_7d as {{ dbt.type_bigint() }}) as purchases_7d,
        cast(snapshots.purchases_30d as {{ dbt.type_bigint() }}) as purchases_30d,
        cast(snapshots.revenue_30d as {{ type_double() }}) as revenue_30d,
        cast(snapshots.views_total as {{ dbt.type_bigint() }}) as views_total,
        cast(snapshots.purchases_total as {{ dbt.type_bigint() }}) as purchases_total,
        cast(snapshots.view_to_cart_rate_30d as {{ type_double() }}) as view_to_cart_rate_30d,
        cast(snapshots.cart_to_purchase_rate_30d as {{ type_double() }})
            as cart_to_purchase_rate_30d,
        cast(snapshots.view_to_purchase_rate_30d as {{ type_double() }})
            as view_to_purchase_rate_30d,
        cast(snapshots.views_7d_share_of_30d as {{ type_double() }}) as views_7d_share_of_30d,
        products.category_l1,
        products.category_l2,
        products.brand,
        products.color,
        products.material,
        cast(products.price as {{ type_double() }}) as price,
        cast(products.price_rel_category as {{ type_double() }}) as price_rel_category,
        cast(case when products.in_stock then 1 else 0 end as {{ dbt.type_bigint() }}) as in_stock,
        cast(
            snapshots.snapshot_day_num - {{ day_number('products.launched_at') }}
            as {{ dbt.type_bigint() }}
        ) as days_since_launch

    from snapshots
    inner join products on snapshots.product_id = products.product_id

)

select * from final
