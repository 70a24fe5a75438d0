-- One row per user, brand and snapshot (end of each day with activity): the weighted interest
-- in the brand over the trailing 90 days, its share of the user's total and its rank.
with

trailing_scores as (

    select * from {{ ref('int_user_brand__trailing') }}

),

final as (

    select
        user_id,
        brand,
        cast(
            {{ dbt.dateadd('day', 'day_num + 1', "cast('2000-01-01' as date)") }}
            as {{ dbt.type_timestamp() }}
        ) as event_timestamp,
        cast(score_90d as {{ type_double() }}) as brand_score_90d,
        cast(share_90d as {{ type_double() }}) as brand_share_90d,
        cast(brand_rank as {{ dbt.type_bigint() }}) as brand_rank_90d

    from trailing_scores

)

select * from final
