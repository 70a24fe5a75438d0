{# Integer day number of a date/timestamp expression (days since 2000-01-01).
   Trailing windows use `range between N preceding` over it, which every warehouse supports. #}
{% macro day_number(expr) -%}
    {{ dbt.datediff("cast('2000-01-01' as date)", "cast(" ~ expr ~ " as date)", "day") }}
{%- endmacro %}

{# A project var holding an ISO date, as a timestamp literal. #}
{% macro var_timestamp(name) -%}
    cast('{{ var(name) }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{# Day of week, 0 = Monday ... 6 = Sunday. #}
{% macro day_of_week(expr) -%}
    {{ return(adapter.dispatch('day_of_week', 'shoprank')(expr)) }}
{%- endmacro %}

{% macro default__day_of_week(expr) -%}
    (extract(isodow from {{ expr }}) - 1)
{%- endmacro %}

{% macro bigquery__day_of_week(expr) -%}
    mod(extract(dayofweek from {{ expr }}) + 5, 7)
{%- endmacro %}

{# Divide, giving null instead of an error when the denominator is 0. #}
{% macro safe_divide(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}

{# Sum of `expr` over the `days` days ending on the current row's day_num (range frame). #}
{% macro trailing_sum(expr, partition_by, days) -%}
    sum({{ expr }}) over (
        partition by {{ partition_by }}
        order by day_num
        range between {{ days - 1 }} preceding and current row
    )
{%- endmacro %}

{# Running total of `expr` up to and including the current row's day. #}
{% macro running_sum(expr, partition_by) -%}
    sum({{ expr }}) over (
        partition by {{ partition_by }}
        order by day_num
        rows between unbounded preceding and current row
    )
{%- endmacro %}

{# numerator / denominator capped at 1; null when the denominator is 0 or null.
   (least() skips nulls on most warehouses, so it cannot carry the null by itself.) #}
{% macro capped_rate(numerator, denominator) -%}
    case when {{ denominator }} > 0 then least(1.0, cast({{ numerator }} as {{ type_double() }}) / {{ denominator }}) end
{%- endmacro %}

{# 64-bit float (dbt.type_float() is 32-bit on DuckDB). #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'shoprank')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double precision{%- endmacro %}

{% macro duckdb__type_double() -%}double{%- endmacro %}

{% macro bigquery__type_double() -%}float64{%- endmacro %}


-- Weighted interest per user, active day and value of `dimension` (a category, a brand) over
-- the trailing `days` days up to and including that day: score_<days>d, its share of the
-- user's total that day, and <rank_name> (1 = strongest, ties broken by the dimension).
{% macro trailing_interest(events, dimension, rank_name, days=90) -%}
with

user_days as (

    select distinct
        user_id,
        day_num
    from {{ events }}

),

dimension_days as (

    select
        user_id,
        day_num,
        {{ dimension }},
        sum(event_weight) as weight

    from {{ events }}
    group by 1, 2, 3

),

trailing_scores as (

    select
        user_days.user_id,
        user_days.day_num,
        dimension_days.{{ dimension }},
        sum(dimension_days.weight) as score_{{ days }}d

    from user_days
    inner join dimension_days
        on
            user_days.user_id = dimension_days.user_id
            and dimension_days.day_num
            between user_days.day_num - {{ days - 1 }} and user_days.day_num
    group by 1, 2, 3

)

select
    *,
    score_{{ days }}d / sum(score_{{ days }}d) over (partition by user_id, day_num)
        as share_{{ days }}d,
    row_number() over (
        partition by user_id, day_num order by score_{{ days }}d desc, {{ dimension }} asc
    ) as {{ rank_name }}

from trailing_scores
{%- endmacro %}
