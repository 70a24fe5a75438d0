-- Every raw event row is either clean (fct_events) or quarantined, never dropped or doubled.
with

raw_count as (

    select count(*) as n_rows from {{ source('raw', 'events') }}

),

kept as (

    select count(*) as n_rows from {{ ref('fct_events') }}

),

rejected as (

    select count(*) as n_rows from {{ ref('quarantine_events') }}

)

select
    raw_count.n_rows as raw_rows,
    kept.n_rows as kept_rows,
    rejected.n_rows as rejected_rows

from raw_count, kept, rejected
where raw_count.n_rows <> kept.n_rows + rejected.n_rows
