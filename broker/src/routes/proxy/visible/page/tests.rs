use super::*;
use serde_json::json;

fn skeleton(object: &Value, wanted: &Wanted) -> Skeleton {
    let raw = RawValue::from_string(object.to_string()).unwrap();
    Skeleton::read(&raw, wanted).unwrap()
}

fn wanted(pairs: &[(&str, &str)]) -> Wanted {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// A skeleton read from text is the one read from the built object,
/// whatever shape each field has, for any pairs the key wants.
#[test]
fn a_skeleton_reads_as_the_built_object_does() {
    let objects = [
        json!({"id": "ch_1", "payment_intent": "pi_1", "metadata": {"order": "7"}}),
        json!({"id": "re_1", "charge": {"id": "ch_1", "refunds": {"data": [{"id": "re_9"}]}}}),
        json!({"id": 5, "payment_intent": {"object": "payment_intent"}, "charge": null}),
        json!({"id": "pi_2", "payment_intent": [1, 2], "charge": {"id": 3}, "metadata": "x"}),
        json!({"id": "pi_3", "metadata": {"order": "7", "checkout": "c1", "n": 7}}),
        json!({"id": "pi_4", "metadata": {"order": 7, "checkout": null}}),
        json!({"id": "pi_5", "metadata": [["order", "7"]]}),
        json!({"id": "pi_6", "metadata": {"order": {"order": "7"}}}),
        json!({"object": "customer"}),
        json!(["pi_1", {"order": "7"}, "pi_2", "ch_1"]),
        json!("pi_1"),
    ];
    let wants = [
        wanted(&[]),
        wanted(&[("order", "7")]),
        wanted(&[("order", "7"), ("checkout", "c1")]),
        wanted(&[("order", "8")]),
        wanted(&[("n", "7")]),
    ];
    let mut matched = 0;
    for object in &objects {
        for wanted in &wants {
            let (read, built) = (skeleton(object, wanted), Skeleton::of(object, wanted));
            assert_eq!(read.id, built.id, "{object}");
            assert_eq!(read.matches, built.matches, "{object} {wanted:?}");
            assert_eq!(read.parents, built.parents, "{object}");
            matched += usize::from(read.matches);
        }
    }
    // ch_1 and pi_3 for the order, pi_3 for the checkout too.
    assert_eq!(matched, 3);
    // A field given twice: the last one, as a built object keeps it.
    let twice = RawValue::from_string(r#"{"id": "pi_1", "id": "pi_2"}"#.to_owned()).unwrap();
    let wants = wanted(&[("order", "7")]);
    assert_eq!(
        Skeleton::read(&twice, &wants).unwrap().id.as_deref(),
        Some("pi_2")
    );
    // Metadata, or a pair of it, given twice: the last one.
    for (text, matches) in [
        (
            r#"{"metadata": {"order": "7"}, "metadata": {"order": "8"}}"#,
            false,
        ),
        (
            r#"{"metadata": {"order": "8"}, "metadata": {"order": "7"}}"#,
            true,
        ),
        (r#"{"metadata": {"order": "7", "order": "8"}}"#, false),
        (r#"{"metadata": {"order": "8", "order": "7"}}"#, true),
        // Escaped text is compared as what it says.
        (r#"{"metadata": {"ord\u0065r": "\u0037"}}"#, true),
        (r#"{"metadata": {"order": "7\u0000"}}"#, false),
    ] {
        let raw = RawValue::from_string(text.to_owned()).unwrap();
        let built: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            Skeleton::read(&raw, &wants).unwrap().matches,
            matches,
            "{text}"
        );
        assert_eq!(Skeleton::of(&built, &wants).matches, matches, "{text}");
    }
}

#[test]
fn only_a_list_or_a_search_is_a_page() {
    let list = json!({"object": "list", "has_more": true, "data": [{"id": "pi_1"}]});
    let page = RawPage::read(Bytes::from(list.to_string()), &Wanted::new()).unwrap();
    assert_eq!(page.fields["has_more"], true);
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id.as_deref(), Some("pi_1"));
    assert_eq!(page.texts().unwrap()[0].get(), r#"{"id":"pi_1"}"#);
    let object = json!({"object": "payment_intent", "data": []});
    assert!(RawPage::read(Bytes::from(object.to_string()), &Wanted::new()).is_none());
    assert!(RawPage::read(Bytes::from_static(b"not json"), &Wanted::new()).is_none());
}

/// The second review: a page's fields other than a list's or a search's
/// own were passed on, whatever objects they held.
#[test]
fn only_a_pages_own_fields_are_kept() {
    let text = r#"{"object": "list", "url": "/v1/x", "has_more": false, "data": [], "extra": [{"id": "pi_hidden"}]}"#;
    let page = RawPage::read(Bytes::from_static(text.as_bytes()), &Wanted::new()).unwrap();
    assert_eq!(
        page.fields,
        json!({"object": "list", "url": "/v1/x", "has_more": false})
    );
}

/// A list whose `data` is not an array has no items (nothing of it is
/// answered), as a built one had; `data` given twice counts as its last.
#[test]
fn odd_data_is_no_items_and_the_last_data_counts() {
    for data in [r#"{"id": "pi_1"}"#, r#""pi_1""#, "7", "null", "true"] {
        let text = format!(r#"{{"object": "list", "data": {data}}}"#);
        let page = RawPage::read(Bytes::from(text), &Wanted::new()).unwrap();
        assert!(page.items.is_empty(), "{data}");
    }
    let twice = r#"{"object": "list", "data": [{"id": "pi_1"}], "data": [{"id": "pi_2"}]}"#;
    let page = RawPage::read(Bytes::from_static(twice.as_bytes()), &Wanted::new()).unwrap();
    let ids: Vec<_> = page.items.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, [Some("pi_2".to_owned())]);
    assert_eq!(page.texts().unwrap()[0].get(), r#"{"id": "pi_2"}"#);
}

/// A helper's review of the one pass: an item serde cannot read for its
/// skeleton (a lone surrogate escape, a number out of range) failed the
/// whole page; it is one the key does not see, and the rest stands.
#[test]
fn an_item_that_cannot_be_read_hides_only_itself() {
    let wants = wanted(&[("order", "7")]);
    for odd in [
        r#"{"id": "\udc00"}"#,
        r#"{"id": 1e400}"#,
        r#"{"metadata": {"\udc00": "7"}}"#,
    ] {
        let text = format!(
            r#"{{"object": "list", "data": [{odd}, {{"id": "pi_1", "metadata": {{"order": "7"}}}}]}}"#
        );
        let page = RawPage::read(Bytes::from(text), &wants).unwrap();
        assert_eq!(page.items.len(), 2, "{odd}");
        assert_eq!(
            (page.items[0].id.as_deref(), page.items[0].matches),
            (None, false),
            "{odd}"
        );
        assert_eq!(
            (page.items[1].id.as_deref(), page.items[1].matches),
            (Some("pi_1"), true),
            "{odd}"
        );
        assert_eq!(page.texts().unwrap().len(), 2, "{odd}");
    }
}

/// An item whose metadata is named as serde_json's raw-value marker
/// reads as a match of what follows; it is left out of the answer when
/// it cannot be built, and the others are answered.
#[test]
fn an_item_that_cannot_be_built_is_left_out_alone() {
    let wants = wanted(&[("order_id", "o-1")]);
    let text = r#"{"object": "list", "data": [{"id": "pi_planted", "metadata": {"$serde_json::private::RawValue": "{", "order_id": "o-1"}}, {"id": "pi_1", "metadata": {"order_id": "o-1"}}]}"#;
    let page = RawPage::read(Bytes::from_static(text.as_bytes()), &wants).unwrap();
    assert!(page.items.iter().all(|item| item.matches));
    let built = page.built(&[0, 1]).unwrap();
    let ids: Vec<_> = built.iter().map(|item| item["id"].clone()).collect();
    assert_eq!(ids, [json!("pi_1")]);
}

/// The second pass finds each item's text in the order the first read
/// their skeletons, whatever each item is.
#[test]
fn each_items_text_is_the_one_its_skeleton_was_read_from() {
    let text = r#"{"object": "list", "data": [{"id": "pi_1"}, "pi_x", [{"id": "pi_y"}], {"metadata": {"order": "7"}, "id": "pi_3"}, null], "has_more": true}"#;
    let wants = wanted(&[("order", "7")]);
    let page = RawPage::read(Bytes::from_static(text.as_bytes()), &wants).unwrap();
    let texts = page.texts().unwrap();
    assert_eq!(texts.len(), 5);
    for (skeleton, text) in page.items.iter().zip(&texts) {
        let built: Value = serde_json::from_str(text.get()).unwrap();
        let again = Skeleton::of(&built, &wants);
        assert_eq!((&skeleton.id, skeleton.matches), (&again.id, again.matches));
    }
    assert!(page.items[3].matches);
    assert_eq!(page.items[2].id, None, "an array is no object");
}
