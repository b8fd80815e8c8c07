-- Every stage move of every deal (crm.stagehistory.list), named, with the time the deal
-- left the stage again (null while it is still there).
select
    m."ID"                                                          as move_id,
    m."OWNER_ID"                                                    as deal_id,
    m."TYPE_ID"                                                     as move_type,
    m."STAGE_ID"                                                    as stage_id,
    s."NAME"                                                        as stage_name,
    m."CATEGORY_ID"                                                 as category_id,
    m."CREATED_TIME"                                                as entered_at,
    lead(m."CREATED_TIME") over (partition by m."OWNER_ID" order by m."ID") as left_at
from {{ source('bitrix24_replica', 'deals_stage_history') }} m
left join {{ source('bitrix24_replica', 'ref_statuses') }} s
    on s."STATUS_ID" = m."STAGE_ID"
   and s."ENTITY_ID" = case when coalesce(m."CATEGORY_ID", 0) = 0 then 'DEAL_STAGE'
                            else 'DEAL_STAGE_' || m."CATEGORY_ID" end
