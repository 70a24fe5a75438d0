-- One row per raw event row, with the first rule it breaks (reject_reason, null when clean).
-- fct_events keeps the clean rows and quarantine_events the rest, so nothing is silently dropped.
with

events as (

    select * from {{ ref('stg_events') }}

),

users as (

    select * from {{ ref('stg_users') }}

),

products as (

    select * from {{ ref('int_products__priced') }}

),

bots as (

    select * from {{ ref('int_users__bots') }}

),

joined as (

    select
        events.*,
        users.signup_at,
        products.price as catalog_price,
        products.launched_at,
        products.category_l1,
        products.category_l2,
        products.brand,
        products.price_rel_category,
        users.user_id is not null as is_known_user,
        products.product_id is not null as is_known_product,
        bots.user_id is not null as is_bot

    from events
    left join users on events.user_id = users.user_id
    left join products on events.product_id = products.product_id
    left join bots on events.user_id = bots.user_id

),

checked as (

    select
        *,
        case
            when duplicate_rank > 1 then 'duplicate_event'
            when event_id is null then 'missing_event_id'
            when event_at is null then 'missing_timestamp'
            when event_type not in ('view', 'cart', 'purchase') or event_type is null
                then 'unknown_event_type'
            when event_at >= {{ var_timestamp('data_end') }} then 'future_timestamp'
            when event_at < {{ var_timestamp('data_start') }} then 'before_data_window'
            when not is_known_user then 'unknown_user'
            when not is_known_product then 'unknown_product'
            when is_bot then 'bot_user'
            when event_at < signup_at then 'before_signup'
            when event_at < launched_at then 'before_launch'
            when price is null then 'missing_price'
            when price <= 0 or price > catalog_price * {{ var('max_price_ratio') }}
                then 'invalid_price'
        end as reject_reason

    from joined

),

final as (

    select * from checked

)

select * from final
