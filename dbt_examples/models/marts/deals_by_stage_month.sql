-- Pipeline by stage and month of creation: how many deals, and how much money.
select
    stage_id,
    cast(date_trunc('month', created_at) as date)   as created_month,
    currency_id,
    count(*)                                        as deals,
    count(*) filter (where is_closed)               as closed_deals,
    sum(opportunity)                                as opportunity_total,
    avg(opportunity)                                as opportunity_avg
from {{ ref('stg_deals') }}
group by all
order by created_month, stage_id, currency_id
