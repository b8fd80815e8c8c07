-- One row per crm.lead.add command of the lead import, keyed back to the CSV row.
select
    command_index,
    external_id                         as lead_key,
    command_key,
    method,
    chunk_index,
    status,
    status = 'ok'                       as is_ok,
    case when status = 'ok' then try_cast(result as bigint) end as lead_id,
    -- Legacy crm.* methods answer a refused row with an empty error code and a sentence.
    coalesce(nullif(error_code, ''), case when status = 'ok' then null else '(empty)' end)
                                        as error_code,
    error_description,
    -- The file's cause of a failure: the description with its values stripped.
    error_reason,
    case
        when status = 'ok' then null
        when status in ('not_run', 'unknown') then status
        when error_description ilike '%e-mail%' then 'invalid_email'
        when error_description ilike '%user with id%' then 'unknown_user'
        when error_description ilike '%does not exist%' then 'unknown_status'
        when error_description ilike '%invalid value%' then 'invalid_value'
        else 'other'
    end                                 as error_category
from {{ source('bitrix24', 'lead_import') }}
