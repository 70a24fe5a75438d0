-- One row per rejected raw event row, with the reason it was rejected.
with

validated as (

    select * from {{ ref('int_events__validated') }}
    where reject_reason is not null

),

final as (

    select
        event_id,
        event_at,
        user_id,
        product_id,
        session_id,
        event_type,
        price,
        quantity,
        device,
        reject_reason

    from validated

)

select * from final
