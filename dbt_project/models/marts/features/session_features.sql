-- One row per user per clean event: the user's live browsing context right after that event
-- (the last five products and three leaf categories viewed, position in the session).
-- Valid from the event's own timestamp; a push source updates it in real time when serving.
with

events as (

    select * from {{ ref('fct_events') }}

),

one_per_instant as (

    select
        *,
        row_number() over (
            partition by user_id, event_at order by event_id desc
        ) as instant_rank

    from events

),

sequenced as (

    select
        user_id,
        event_at,
        session_id,
        event_type,
        product_id,
        category_l2,
        lag(product_id, 1) over (partition by user_id order by event_at) as previous_product_id_1,
        lag(product_id, 2) over (partition by user_id order by event_at) as previous_product_id_2,
        lag(product_id, 3) over (partition by user_id order by event_at) as previous_product_id_3,
        lag(product_id, 4) over (partition by user_id order by event_at) as previous_product_id_4,
        lag(category_l2, 1) over (partition by user_id order by event_at) as previous_category_l2_1,
        lag(category_l2, 2) over (partition by user_id order by event_at) as previous_category_l2_2,
        row_number() over (partition by session_id order by event_at) as session_position,
        sum(case when event_type = 'cart' then 1 else 0 end)
            over (
                partition by session_id order by event_at
                rows between unbounded preceding and current row
            )
            as session_carts,
        min(event_at) over (partition by session_id) as session_started_at

    from one_per_instant
    where instant_rank = 1

),

final as (

    select
        user_id,
        event_at as event_timestamp,
        session_id,
        cast(product_id as {{ dbt.type_bigint() }}) as last_product_id,
        cast(previous_product_id_1 as {{ dbt.type_bigint() }}) as last_product_id_2,
        cast(previous_product_id_2 as {{ dbt.type_bigint() }}) as last_product_id_3,
        cast(previous_product_id_3 as {{ dbt.type_bigint() }}) as last_product_id_4,
        cast(previous_product_id_4 as {{ dbt.type_bigint() }}) as last_product_id_5,
        category_l2 as last_category_l2,
        previous_category_l2_1 as last_category_l2_2,
        previous_category_l2_2 as last_category_l2_3,
        event_type as last_event_type,
        cast(session_position as {{ dbt.type_bigint() }}) as session_event_count,
        cast(session_carts as {{ dbt.type_bigint() }}) as session_cart_count,
        cast(
            {{ dbt.datediff('session_started_at', 'event_at', 'second') }}
            as {{ type_double() }}
        ) / 60.0 as session_minutes

    from sequenced

)

select * from final
