-- One row per clean, de-duplicated event, enriched with the product's category and brand.
with

validated as (

    select * from {{ ref('int_events__validated') }}
    where reject_reason is null

),

final as (

    select
        event_id,
        event_at,
        cast(event_at as date) as activity_date,
        {{ day_number('event_at') }} as day_num,
        user_id,
        product_id,
        session_id,
        event_type,
        case event_type when 'purchase' then 5 when 'cart' then 3 else 1 end as event_weight,
        price,
        quantity,
        case when event_type = 'purchase' then price * quantity else 0 end as revenue,
        device,
        category_l1,
        category_l2,
        brand,
        price_rel_category

    from validated

)

select * from final
