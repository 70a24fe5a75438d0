-- One row per user profile: renamed and typed.
with

source as (

    select * from {{ source('raw', 'users') }}

),

final as (

    select
        cast(user_id as {{ api.Column.translate_type('bigint') }}) as user_id,
        cast(signup_at as {{ dbt.type_timestamp() }}) as signup_at,
        cast(age_band as {{ dbt.type_string() }}) as age_band,
        lower(trim(cast(region as {{ dbt.type_string() }}))) as region,
        lower(trim(cast(device_preference as {{ dbt.type_string() }}))) as device_preference

    from source

)

select * from final
