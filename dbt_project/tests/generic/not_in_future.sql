{# No timestamp lies after the end of the data window (vars.data_end) plus `grace_days`. #}
{% test not_in_future(model, column_name, grace_days=0) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} > {{ dbt.dateadd('day', grace_days, var_timestamp('data_end')) }}

{% endtest %}
