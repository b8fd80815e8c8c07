-- Why rows of the lead import failed: one row per error code and reason, with examples.
select
    error_code,
    error_category,
    error_reason,
    count(*)                                        as failed_commands,
    min(error_description)                          as example_description,
    list(lead_key order by command_index)[1:5]      as first_lead_keys
from {{ ref('stg_lead_import_results') }}
where not is_ok
group by error_code, error_category, error_reason
order by failed_commands desc, error_code, error_reason
