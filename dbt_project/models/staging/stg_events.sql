-- One row per raw event row (duplicates included): renamed, typed and trimmed.
-- Rejection happens downstream in int_events__validated, so every raw row stays traceable.
with

source as (

    select * from {{ source('raw', 'events') }}

),

renamed as (

    select
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        cast(event_timestamp as {{ dbt.type_timestamp() }}) as event_at,
        {{ dbt.safe_cast('user_id', api.Column.translate_type('bigint')) }} as user_id,
        {{ dbt.safe_cast('product_id', api.Column.translate_type('bigint')) }} as product_id,
        cast(session_id as {{ dbt.type_string() }}) as session_id,
        lower(trim(cast(event_type as {{ dbt.type_string() }}))) as event_type,
        {{ dbt.safe_cast('price', type_double()) }} as price,
        coalesce({{ dbt.safe_cast('quantity', dbt.type_int()) }}, 1) as quantity,
        lower(trim(cast(device as {{ dbt.type_string() }}))) as device

    from source

),

final as (

    select
        *,
        row_number() over (
            partition by event_id
            order by event_at, user_id, product_id, event_type
        ) as duplicate_rank

    from renamed

)

select * from final
