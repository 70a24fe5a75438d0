-- One row per user flagged as a bot, with the rule that flagged them.
-- Rule (vars in dbt_project.yml): more than bot_max_daily_views views on any one day, or at
-- least bot_min_total_views views in the whole log with no cart add and no purchase.
with

events as (

    select * from {{ ref('stg_events') }}
    where duplicate_rank = 1

),

daily_views as (

    select
        user_id,
        cast(event_at as date) as activity_date,
        count(*) as n_views

    from events
    where event_type = 'view'
    group by 1, 2

),

per_user as (

    select
        events.user_id,
        sum(case when events.event_type = 'view' then 1 else 0 end) as total_views,
        sum(case when events.event_type in ('cart', 'purchase') then 1 else 0 end)
            as total_conversions

    from events
    group by 1

),

peak_day as (

    select
        user_id,
        max(n_views) as max_daily_views

    from daily_views
    group by 1

),

flagged as (

    select
        per_user.user_id,
        per_user.total_views,
        per_user.total_conversions,
        peak_day.max_daily_views,
        case
            when peak_day.max_daily_views > {{ var('bot_max_daily_views') }}
                then 'daily_views_above_limit'
            else 'many_views_no_conversion'
        end as bot_rule

    from per_user
    inner join peak_day on per_user.user_id = peak_day.user_id
    where
        peak_day.max_daily_views > {{ var('bot_max_daily_views') }}
        or (
            per_user.total_views >= {{ var('bot_min_total_views') }}
            and per_user.total_conversions = 0
        )

),

final as (

    select * from flagged

)

select * from final
