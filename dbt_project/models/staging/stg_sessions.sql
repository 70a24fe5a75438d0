-- One row per browsing session: renamed and typed.
with

source as (

    select * from {{ source('raw', 'sessions') }}

),

final as (

    select
        cast(session_id as {{ dbt.type_string() }}) as session_id,
        cast(user_id as {{ api.Column.translate_type('bigint') }}) as user_id,
        cast(started_at as {{ dbt.type_timestamp() }}) as started_at,
        cast(ended_at as {{ dbt.type_timestamp() }}) as ended_at,
        lower(trim(cast(device as {{ dbt.type_string() }}))) as device,
        lower(trim(cast(traffic_source as {{ dbt.type_string() }}))) as traffic_source

    from source

)

select * from final
