-- One row per product: catalog attributes plus its price relative to the leaf category median.
with

products as (

    select * from {{ ref('stg_products') }}

),

category_prices as (

    select
        category_l2,
        percentile_cont(0.5) within group (order by price) as category_median_price

    from products
    where price > 0
    group by 1

),

final as (

    select
        products.*,
        category_prices.category_median_price,
        {{ safe_divide('products.price', 'category_prices.category_median_price') }}
            as price_rel_category

    from products
    left join category_prices on products.category_l2 = category_prices.category_l2

)

select * from final
