//! What of an answer a key may see.
//!
//! A list or a search answers with objects of the whole account: the broker
//! keeps only those the key may see, and reads further pages upstream (at
//! most [`MAX_PAGES`] in all) so that a list page the client gets is empty
//! only when nothing follows. An object expanded into an answer
//! (`expand[]`) that the key may not see is put back as its id, as Stripe
//! answers without the expansion. A read of an object the key reaches only
//! by its metadata is checked on the answer, and withheld if it does not match.
//!
//! A key sees an object when it was issued for it (`allowed_objects`), a key
//! of its label created it, the request named it and was allowed to, its
//! metadata holds every pair of the key's `allowed_metadata`, or it is a
//! Charge or Refund whose `payment_intent` or `charge` is one of those.

mod page;

use std::collections::HashSet;

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;

use super::upstream::{self, Upstream};
use crate::error::ApiError;
use crate::form::FormParams;
use crate::key::KeyRecord;
use crate::state::AppState;
use crate::store::MadeBy;
use crate::stripe::VENDOR;
use crate::stripe::ids::object_in_path;
use crate::stripe::params::named_objects;
use page::{RawPage, Skeleton, matches_metadata};

/// Most `expand[]` entries one request may carry.
const MAX_EXPANSIONS: usize = 20;
/// Deepest expansion Stripe allows (`a.b.c.d`).
const MAX_EXPANSION_DEPTH: usize = 4;
/// Most upstream pages one list or search request reads to fill its page.
pub const MAX_PAGES: usize = 5;
/// Objects per upstream page when the broker reads a further page (Stripe's most).
const SCAN_LIMIT: &str = "100";
/// Objects per page when the client names no `limit` (Stripe's default).
const DEFAULT_LIMIT: usize = 10;
/// Parameters that say where a page starts.
const CURSORS: [&str; 4] = ["starting_after", "ending_before", "page", "limit"];

/// How the key reaches the object its path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathReach {
    /// Checked before forwarding (or the path names none).
    Checked,
    /// A read of an object the key may see only if its metadata matches:
    /// checked on the answer.
    OnAnswer,
}

/// What must be checked on an answer before the client sees it.
pub struct Sight<'r> {
    /// Each `expand[]` entry, split at its dots.
    expansions: Vec<Vec<&'r str>>,
    /// A list or search of the whole account (the path names no object).
    listing: bool,
    /// The object the path names, when it is checked on the answer.
    on_answer: Option<&'r str>,
    /// Objects the request named and was allowed to.
    named: Vec<&'r str>,
}

impl<'r> Sight<'r> {
    /// Reads what the answer to this request must be checked for; refuses
    /// expansions past Stripe's own limits.
    pub fn of(
        method: &str,
        path: &'r str,
        params: &'r FormParams,
        reach: PathReach,
    ) -> Result<Self, ApiError> {
        let mut expansions = Vec::new();
        for (name, value) in params.pairs() {
            if name == "expand" || name.starts_with("expand[") {
                let segments: Vec<&str> = value.split('.').collect();
                if segments.len() > MAX_EXPANSION_DEPTH || segments.iter().any(|s| s.is_empty()) {
                    return Err(ApiError::BadParameter(format!(
                        "parameter `expand` takes dotted field names at most {MAX_EXPANSION_DEPTH} deep"
                    )));
                }
                expansions.push(segments);
            }
        }
        if expansions.len() > MAX_EXPANSIONS {
            return Err(ApiError::BadParameter(format!(
                "parameter `expand` takes at most {MAX_EXPANSIONS} fields"
            )));
        }
        let path_object = object_in_path(path);
        let on_answer = path_object.filter(|_| reach == PathReach::OnAnswer);
        let named = named_objects(method, path, params)?
            .into_iter()
            .filter(|id| Some(*id) != on_answer)
            .collect();
        Ok(Self {
            expansions,
            listing: method == "GET" && path_object.is_none(),
            on_answer,
            named,
        })
    }

    fn is_needed(&self) -> bool {
        self.listing || self.on_answer.is_some() || !self.expansions.is_empty()
    }

    /// Whether further pages may be read upstream (and the headers are needed again).
    pub fn may_read_pages(&self) -> bool {
        self.listing
    }

    /// The answer as the key may see it.
    pub async fn limit(
        &self,
        state: &AppState,
        key: &KeyRecord,
        page: Page<'_>,
        mut answer: Upstream,
    ) -> Result<Upstream, ApiError> {
        if !answer.status.is_success() || !self.is_needed() {
            return Ok(answer);
        }
        // The page reader holds the answer's text alone, so that it is
        // freed as soon as the next page replaces it.
        let text = std::mem::take(&mut answer.body);
        let listed = if self.listing {
            RawPage::read(text.clone(), &key.allowed_metadata)
        } else {
            None
        };
        let mut body = match listed {
            Some(listed) => {
                drop(text);
                self.fill(state, key, page, listed).await?
            }
            None => {
                let body: Value =
                    serde_json::from_slice(&text).map_err(|_| ApiError::UpstreamUnavailable)?;
                // What a list request got that is not a page it can read (a
                // list without its `object`, a `data` under another object, an
                // array) is never answered whole: it may hold anything.
                if self.listing && (!body.is_object() || body.get("data").is_some()) {
                    return Err(ApiError::UpstreamUnavailable);
                }
                body
            }
        };
        if let Some(id) = self.on_answer
            && (body["id"] != id || !matches_metadata(&key.allowed_metadata, &body["metadata"]))
        {
            return Err(ApiError::ObjectNotAllowed(
                "key may not reach this object".to_owned(),
            ));
        }
        if !self.expansions.is_empty() {
            self.collapse(state, key, &mut body).await?;
        }
        answer.body = Bytes::from(serde_json::to_vec(&body).map_err(ApiError::internal)?);
        Ok(answer)
    }

    /// The objects among `ids` the key sees by id: issued for, named, or
    /// created under its label (`made`: the label's, kept across a request's pages).
    async fn seen(
        &self,
        key: &KeyRecord,
        made: &mut MadeBy<'_>,
        ids: Vec<&str>,
    ) -> Result<HashSet<String>, ApiError> {
        let mut seen: HashSet<String> = key.allowed_objects.iter().cloned().collect();
        seen.extend(self.named.iter().map(|id| (*id).to_owned()));
        let mut unknown: Vec<&str> = ids.into_iter().filter(|id| !seen.contains(*id)).collect();
        unknown.sort_unstable();
        unknown.dedup();
        seen.extend(made.among(&unknown).await?);
        Ok(seen)
    }

    /// `items` less those the key may not see, those built.
    async fn visible_items(
        &self,
        key: &KeyRecord,
        made: &mut MadeBy<'_>,
        page: &RawPage,
    ) -> Result<Vec<Value>, ApiError> {
        let ids = page.items.iter().flat_map(Skeleton::ids).collect();
        let seen = self.seen(key, made, ids).await?;
        let shown: Vec<usize> = (page.items.iter().enumerate())
            .filter(|(_, skeleton)| sees(&seen, skeleton))
            .map(|(at, _)| at)
            .collect();
        if shown.is_empty() {
            return Ok(Vec::new());
        }
        page.built(&shown).ok_or(ApiError::UpstreamUnavailable)
    }

    /// A list or search answer with only what the key sees, reading further
    /// pages while the page is short and more may follow.
    async fn fill(
        &self,
        state: &AppState,
        key: &KeyRecord,
        request: Page<'_>,
        first: RawPage,
    ) -> Result<Value, ApiError> {
        let search = first.fields["object"] == "search_result";
        let backwards = !search && request.params.has("ending_before");
        let limit = request
            .params
            .scalar("limit")
            .and_then(|limit| limit.parse::<usize>().ok())
            .unwrap_or(DEFAULT_LIMIT)
            .clamp(1, 100);
        let mut answer = first;
        let mut kept: Vec<Value> = Vec::new();
        let mut pages = 1;
        let label = key.namespace();
        let mut made = MadeBy::new(state.store(), VENDOR, &label);
        // A further page only while the request is within one upstream
        // timeout: a slow upstream costs one request at most about two.
        let started = std::time::Instant::now();
        loop {
            let cursor = if search {
                answer.fields["next_page"].as_str().map(str::to_owned)
            } else if backwards {
                answer.items.first().and_then(|item| item.id.clone())
            } else {
                answer.items.last().and_then(|item| item.id.clone())
            };
            let mut visible = self.visible_items(key, &mut made, &answer).await?;
            // The page's text is not needed past here: freed before the next
            // page arrives, so that a scan holds one page at a time (issue 24:
            // the broker's peak RSS at concurrency 100 is pages in flight).
            answer.forget_items();
            if backwards {
                visible.append(&mut kept);
                kept = visible;
            } else {
                kept.append(&mut visible);
            }
            let more = answer.fields["has_more"] == true;
            let in_time = started.elapsed() < state.upstream_timeout();
            let Some(cursor) =
                cursor.filter(|_| more && kept.len() < limit && pages < MAX_PAGES && in_time)
            else {
                break;
            };
            let name = match (search, backwards) {
                (true, _) => "page",
                (false, true) => "ending_before",
                (false, false) => "starting_after",
            };
            let query = request
                .params
                .encode_replacing(&CURSORS, &[(name, &cursor), ("limit", SCAN_LIMIT)]);
            let next = upstream::send(state, "GET", request.path, query, request.headers.clone())
                .await
                .ok()
                .filter(|next| next.status.is_success())
                .and_then(|next| RawPage::read(next.body, &key.allowed_metadata));
            match next {
                Some(next) => answer = next,
                // What was found stands; the client's next page starts after it.
                None if !kept.is_empty() => {
                    answer.fields["has_more"] = Value::Bool(true);
                    break;
                }
                None => return Err(ApiError::UpstreamUnavailable),
            }
            pages += 1;
        }
        let mut answer = answer.fields;
        let mut more = answer["has_more"] == true;
        if !search && kept.len() > limit {
            more = true;
            if backwards {
                kept.drain(..kept.len() - limit);
            } else {
                kept.truncate(limit);
            }
        }
        if !search && more && kept.is_empty() {
            return Err(ApiError::BadParameter(format!(
                "no object this key may see among the next {MAX_PAGES} pages of this list: narrow it (created, customer) or search instead"
            )));
        }
        if answer.get("total_count").is_some() {
            answer["total_count"] = if more {
                Value::Null
            } else {
                Value::from(kept.len())
            };
        }
        answer["has_more"] = Value::Bool(more);
        answer["data"] = Value::Array(kept);
        Ok(answer)
    }

    /// Puts back as its id every expanded object the key may not see.
    async fn collapse(
        &self,
        state: &AppState,
        key: &KeyRecord,
        body: &mut Value,
    ) -> Result<(), ApiError> {
        let mut expanded = Vec::new();
        for path in &self.expansions {
            each_expanded(body, path, &mut |object| {
                expanded.extend(
                    Skeleton::of(object, &key.allowed_metadata)
                        .ids()
                        .map(str::to_owned),
                );
            });
        }
        let ids: Vec<String> = expanded;
        let label = key.namespace();
        let mut made = MadeBy::new(state.store(), VENDOR, &label);
        let seen = self
            .seen(key, &mut made, ids.iter().map(String::as_str).collect())
            .await?;
        for path in &self.expansions {
            collapse_unseen(body, path, &|object| {
                sees(&seen, &Skeleton::of(object, &key.allowed_metadata))
            });
        }
        Ok(())
    }
}

/// Where a list answer's further pages are read from: the request as sent upstream.
pub struct Page<'r> {
    /// The request's path.
    pub path: &'r str,
    /// Its parameters.
    pub params: &'r FormParams,
    /// Its forwarded headers (`Stripe-Account`, `Stripe-Version`).
    pub headers: &'r HeaderMap,
}

fn is_list(body: &Value) -> bool {
    body["object"] == "list" || body["object"] == "search_result"
}

/// Whether the key sees an object, given the ids it sees by id.
fn sees(seen: &HashSet<String>, object: &Skeleton) -> bool {
    object.ids().any(|id| seen.contains(id)) || object.matches
}

/// Whether `value` is an object Stripe expanded (it has an id), rather than
/// a structure of fields.
fn is_expanded(value: &Value) -> bool {
    value["id"].is_string()
}

/// The root's own objects: a list's items, or the answer itself, and the
/// path that remains to walk from them.
fn roots<'v, 'p>(body: &'v Value, path: &'p [&'p str]) -> (Vec<&'v Value>, &'p [&'p str]) {
    if is_list(body) && path.first() == Some(&"data") {
        let items = body["data"].as_array().map(|items| items.iter().collect());
        (items.unwrap_or_default(), &path[1..])
    } else {
        (vec![body], path)
    }
}

/// Calls `visit` with each expanded object along `path` below the root's own objects.
fn each_expanded<'v>(body: &'v Value, path: &[&str], visit: &mut impl FnMut(&'v Value)) {
    fn walk<'v>(value: &'v Value, path: &[&str], visit: &mut impl FnMut(&'v Value)) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let children: Vec<&Value> = match &value[*first] {
            Value::Array(items) => items.iter().collect(),
            child @ Value::Object(_) => vec![child],
            _ => Vec::new(),
        };
        for child in children {
            if is_expanded(child) {
                visit(child);
            }
            walk(child, rest, visit);
        }
    }
    let (roots, path) = roots(body, path);
    for root in roots {
        walk(root, path, visit);
    }
}

/// Replaces each expanded object along `path` that `sees` refuses by its id.
fn collapse_unseen(body: &mut Value, path: &[&str], sees: &impl Fn(&Value) -> bool) {
    fn walk(value: &mut Value, path: &[&str], sees: &impl Fn(&Value) -> bool) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let Some(child) = value.get_mut(*first) else {
            return;
        };
        let children: Vec<&mut Value> = match child {
            Value::Array(items) => items.iter_mut().collect(),
            child @ Value::Object(_) => vec![child],
            _ => Vec::new(),
        };
        for child in children {
            if is_expanded(child) && !sees(child) {
                let id = child["id"].take();
                *child = id;
            } else {
                walk(child, rest, sees);
            }
        }
    }
    if is_list(body) && path.first() == Some(&"data") {
        if let Some(items) = body["data"].as_array_mut() {
            for item in items {
                walk(item, &path[1..], sees);
            }
        }
    } else {
        walk(body, path, sees);
    }
}
