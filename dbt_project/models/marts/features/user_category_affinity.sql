-- One row per user, top-level category and snapshot (end of each day with activity): the
-- weighted interest in the category over the trailing 90 days and its share of the user's total.
with

trailing_scores as (

    select * from {{ ref('int_user_category__trailing') }}

),

final as (

    select
        user_id,
        category_l1,
        cast(
            {{ dbt.dateadd('day', 'day_num + 1', "cast('2000-01-01' as date)") }}
            as {{ dbt.type_timestamp() }}
        ) as event_timestamp,
        cast(score_90d as {{ type_double() }}) as category_score_90d,
        cast(share_90d as {{ type_double() }}) as category_share_90d,
        cast(category_rank as {{ dbt.type_bigint() }}) as category_rank_90d

    from trailing_scores

)

select * from final
