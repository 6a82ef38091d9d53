//! The namespace the worker serves must have `OrderId` as a Keyword search
//! attribute: every checkout sets it first, and on a namespace without it
//! each checkout's first workflow task fails forever (before any money
//! moves, but the checkout never proceeds). The worker checks at start,
//! registers it where the server lets it (the dev server, a self-hosted one
//! with operator rights), and otherwise stops with the command to run.

use std::collections::HashMap;

use temporalio_client::Client;
use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_common::protos::temporal::api::operatorservice::v1::{
    AddSearchAttributesRequest, ListSearchAttributesRequest,
};

use crate::error::WorkerError;

/// The search attribute's name, as the workflow sets it.
const ORDER_ID: &str = "OrderId";

/// The command that registers it, for an operator to run.
fn command(namespace: &str) -> String {
    format!(
        "temporal operator search-attribute create --namespace {namespace} --name {ORDER_ID} --type Keyword"
    )
}

/// Checks `namespace` has `OrderId` as a Keyword search attribute, registering it if it can.
pub async fn ensure_order_id(client: &Client, namespace: &str) -> Result<(), WorkerError> {
    let mut operator = client.connection().operator_service();
    let listed = operator
        .list_search_attributes(tonic::Request::new(ListSearchAttributesRequest {
            namespace: namespace.to_owned(),
        }))
        .await
        .map_err(|status| {
            WorkerError::Temporal(format!(
                "cannot list the search attributes of namespace {namespace} ({}); make sure {ORDER_ID} is registered: {}",
                status.message(),
                command(namespace)
            ))
        })?
        .into_inner();
    let keyword = IndexedValueType::Keyword as i32;
    match listed.custom_attributes.get(ORDER_ID) {
        Some(kind) if *kind == keyword => return Ok(()),
        Some(_) => {
            return Err(WorkerError::Temporal(format!(
                "namespace {namespace} has {ORDER_ID} as a search attribute of another type than Keyword: checkouts would fail; remove it and run: {}",
                command(namespace)
            )));
        }
        None => {}
    }
    operator
        .add_search_attributes(tonic::Request::new(AddSearchAttributesRequest {
            search_attributes: HashMap::from([(ORDER_ID.to_owned(), keyword)]),
            namespace: namespace.to_owned(),
        }))
        .await
        .map_err(|status| {
            WorkerError::Temporal(format!(
                "namespace {namespace} has no {ORDER_ID} search attribute, and registering it was refused ({}): run {} (on Temporal Cloud: tcld namespace search-attributes add --namespace {namespace} --search-attribute {ORDER_ID}=Keyword)",
                status.message(),
                command(namespace)
            ))
        })?;
    tracing::info!(
        namespace,
        "registered the OrderId search attribute (Keyword) the checkouts set"
    );
    Ok(())
}
