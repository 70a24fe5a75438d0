-- One row per catalog product: renamed and typed.
with

source as (

    select * from {{ source('raw', 'products') }}

),

final as (

    select
        cast(product_id as {{ api.Column.translate_type('bigint') }}) as product_id,
        cast(title as {{ dbt.type_string() }}) as title,
        cast(description as {{ dbt.type_string() }}) as description,
        cast(category_l1 as {{ dbt.type_string() }}) as category_l1,
        cast(category_l2 as {{ dbt.type_string() }}) as category_l2,
        cast(brand as {{ dbt.type_string() }}) as brand,
        cast(color as {{ dbt.type_string() }}) as color,
        cast(material as {{ dbt.type_string() }}) as material,
        cast(price as {{ type_double() }}) as price,
        cast(in_stock as {{ dbt.type_boolean() }}) as in_stock,
        cast(launched_at as {{ dbt.type_timestamp() }}) as launched_at

    from source

)

select * from final
