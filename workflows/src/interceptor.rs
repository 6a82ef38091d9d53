//! Puts each scheduled activity's schedule-to-close timeout in a header, since
//! the SDK folds it into `deadline` and an activity cannot see it otherwise.

use std::collections::HashMap;

use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_sdk::ActivityCloseTimeouts;
use temporalio_sdk::workflow_interceptors::{
    CancellableWorkflowOutboundFuture, ScheduleActivityInput, ScheduleActivityResult,
    WorkflowInterceptor, WorkflowInterceptorConstructor, WorkflowInterceptorContext, WorkflowNext,
};

use crate::contract::SCHEDULE_TO_CLOSE_HEADER;

/// Sets [`SCHEDULE_TO_CLOSE_HEADER`] on every activity a workflow schedules
/// with a schedule-to-close timeout. Deterministic: it reads only the
/// command's own options. Register it on the worker and on the replayer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScheduleToCloseHeader;

impl ScheduleToCloseHeader {
    /// The constructor to register with a worker or replayer.
    pub fn constructor() -> WorkflowInterceptorConstructor {
        WorkflowInterceptorConstructor::new(|_| ScheduleToCloseHeader)
    }
}

/// A JSON payload holding `millis`, as every SDK's default converter writes a number.
pub fn millis_payload(millis: u64) -> Payload {
    Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
        data: millis.to_string().into_bytes(),
        ..Default::default()
    }
}

impl WorkflowInterceptor for ScheduleToCloseHeader {
    fn schedule_activity(
        &self,
        _ctx: WorkflowInterceptorContext,
        mut input: ScheduleActivityInput,
        next: WorkflowNext<
            'static,
            ScheduleActivityInput,
            CancellableWorkflowOutboundFuture<ScheduleActivityResult>,
        >,
    ) -> CancellableWorkflowOutboundFuture<ScheduleActivityResult> {
        let schedule_to_close = match input.options().close_timeouts {
            ActivityCloseTimeouts::ScheduleToClose(timeout) => Some(timeout),
            ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close, ..
            } => Some(schedule_to_close),
            _ => None,
        };
        // Zero means unset to Temporal; the activity then falls back to its deadline.
        if let Some(timeout) = schedule_to_close.filter(|t| !t.is_zero()) {
            let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            input
                .headers_mut()
                .insert(SCHEDULE_TO_CLOSE_HEADER.to_owned(), millis_payload(millis));
        }
        next.run(input)
    }
}
