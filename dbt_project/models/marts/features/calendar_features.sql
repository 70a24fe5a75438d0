-- One row per calendar day (from a week before the data window to 90 days after it): day of
-- week, month, season and distance to the retail holidays. Valid from the day's midnight.
with

days as (

    {{ dbt.date_spine(
        'day',
        dbt.dateadd('day', -7, var_timestamp('data_start')),
        dbt.dateadd('day', 90, var_timestamp('data_end'))
    ) }}

),

holidays as (

    select * from {{ ref('holidays') }}

),

calendar as (

    select cast(date_day as date) as calendar_date from days

),

next_holiday as (

    select
        calendar.calendar_date,
        holidays.holiday_name,
        {{ dbt.datediff('calendar.calendar_date', 'holidays.holiday_date', 'day') }}
            as days_to_holiday,
        row_number() over (
            partition by calendar.calendar_date order by holidays.holiday_date
        ) as holiday_rank

    from calendar
    inner join holidays on calendar.calendar_date <= holidays.holiday_date

),

named_distance as (

    select
        calendar_date,
        min(case when holiday_name = 'christmas' then days_to_holiday end)
            as days_to_christmas,
        min(case when holiday_name = 'black_friday' then days_to_holiday end)
            as days_to_black_friday

    from next_holiday
    group by 1

),

final as (

    select
        cast(calendar.calendar_date as {{ dbt.type_string() }}) as calendar_date,
        cast(calendar.calendar_date as {{ dbt.type_timestamp() }}) as event_timestamp,
        cast({{ day_of_week('calendar.calendar_date') }} as {{ dbt.type_bigint() }})
            as day_of_week,
        cast(
            case when {{ day_of_week('calendar.calendar_date') }} >= 5 then 1 else 0 end
            as {{ dbt.type_bigint() }}
        ) as is_weekend,
        cast(extract(month from calendar.calendar_date) as {{ dbt.type_bigint() }}) as month,
        cast(extract(day from calendar.calendar_date) as {{ dbt.type_bigint() }}) as day_of_month,
        case
            when extract(month from calendar.calendar_date) in (12, 1, 2) then 'winter'
            when extract(month from calendar.calendar_date) in (3, 4, 5) then 'spring'
            when extract(month from calendar.calendar_date) in (6, 7, 8) then 'summer'
            else 'autumn'
        end as season,
        cast(
            case
                when
                    extract(month from calendar.calendar_date) = 12
                    or (
                        extract(month from calendar.calendar_date) = 11
                        and extract(day from calendar.calendar_date) >= 15
                    )
                    then 1
                else 0
            end as {{ dbt.type_bigint() }}
        ) as is_holiday_season,
        next_holiday.holiday_name as next_holiday,
        cast(next_holiday.days_to_holiday as {{ dbt.type_bigint() }}) as days_to_next_holiday,
        cast(named_distance.days_to_christmas as {{ dbt.type_bigint() }}) as days_to_christmas,
        cast(named_distance.days_to_black_friday as {{ dbt.type_bigint() }})
            as days_to_black_friday

    from calendar
    left join next_holiday
        on calendar.calendar_date = next_holiday.calendar_date and next_holiday.holiday_rank = 1
    left join named_distance on calendar.calendar_date = named_distance.calendar_date

)

select * from final
