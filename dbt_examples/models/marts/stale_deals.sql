-- Open deals nobody has touched for `stale_after_days` days: the write-back asset
-- marks them in the portal (crm.deal.update) so their owners see them.
select
    deal_id,
    title,
    stage_id,
    assigned_by_id,
    modified_at,
    date_diff('day', modified_at, current_timestamp) as days_since_modified
from {{ ref('stg_deals') }}
where not is_closed
  and modified_at < current_timestamp - to_days({{ var('stale_after_days') }})
order by deal_id
