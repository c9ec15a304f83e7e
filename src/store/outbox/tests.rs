//! Outbox tests: deduplication, group commits, delivery moves, replay,
//! pruning and retention, company isolation.

use super::*;
use crate::store::Store;

fn company(id: &str) -> CompanyId {
    CompanyId::parse(id).unwrap()
}

fn message(id: &str, chat: &str) -> NewEvent {
    NewEvent {
        dedup: DedupKey::Message {
            chat: chat.into(),
            sender: chat.into(),
            message_id: id.into(),
        },
        event: pb::WebhookEvent {
            id: format!("evt_{id}"),
            company_id: "acme".into(),
            r#type: "message.received".into(),
            timestamp_ms: 1_000,
            payload: Some(pb::webhook_event::Payload::Message(pb::InboundMessage {
                chat: chat.into(),
                message_id: id.into(),
                ..Default::default()
            })),
        },
        lane: chat.into(),
    }
}

#[test]
fn a_redelivered_message_is_stored_and_queued_once() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let acme = company("acme");
    let chat = "15550003333@s.whatsapp.net";
    let first = outbox
        .commit(
            &acme,
            &[message("A1", chat)],
            &[Target::Company, Target::Global],
        )
        .unwrap();
    assert!(!first[0].duplicate);
    assert_eq!(first[0].queued.len(), 2);
    // Same message again, in a batch with a new one.
    let second = outbox
        .commit(
            &acme,
            &[message("A1", chat), message("A2", chat)],
            &[Target::Company],
        )
        .unwrap();
    assert!(second[0].duplicate);
    assert_eq!(second[0].event_seq, first[0].event_seq);
    assert!(second[0].queued.is_empty());
    assert!(!second[1].duplicate);
    assert_eq!(outbox.event_count(&acme), 2);
    assert_eq!(outbox.queued().unwrap().len(), 3);
    // The same message twice in one commit: stored once.
    let twice = outbox
        .commit(&acme, &[message("B1", chat), message("B1", chat)], &[])
        .unwrap();
    assert!(!twice[0].duplicate && twice[1].duplicate);
    assert_eq!(twice[0].event_seq, twice[1].event_seq);
    assert_eq!(outbox.event_count(&acme), 3);
    // The same id in another chat is another message.
    let other = outbox
        .commit(&acme, &[message("A1", "15550004444@s.whatsapp.net")], &[])
        .unwrap();
    assert!(!other[0].duplicate);
}

#[test]
fn deliveries_move_between_queue_delivered_and_dead() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let acme = company("acme");
    let committed = outbox
        .commit(
            &acme,
            &[message("A1", "c"), message("A2", "c")],
            &[Target::Company],
        )
        .unwrap();
    let (k1, k2) = (
        committed[0].queued[0].clone(),
        committed[1].queued[0].clone(),
    );
    let d1 = outbox.get_queued(&k1).unwrap().unwrap();
    outbox.finish(&k1, &d1, DeliveryState::Delivered).unwrap();
    let mut d2 = outbox.get_queued(&k2).unwrap().unwrap();
    d2.attempts = 5;
    outbox.finish(&k2, &d2, DeliveryState::Dead).unwrap();
    assert!(outbox.queued().unwrap().is_empty());
    assert_eq!(
        outbox
            .list(&acme, DeliveryState::Delivered, 10)
            .unwrap()
            .len(),
        1
    );
    let dead = outbox.list(&acme, DeliveryState::Dead, 10).unwrap();
    assert_eq!(dead[0].0, k2);
    assert_eq!(dead[0].1.attempts, 5);
    // Retry: back to the queue with attempts reset; only once.
    let requeued = outbox.requeue_dead(&k2).unwrap().unwrap();
    assert_eq!(requeued.attempts, 0);
    assert!(outbox.requeue_dead(&k2).unwrap().is_none());
    assert_eq!(outbox.queued().unwrap()[0].0, k2);
}

#[test]
fn one_group_commit_deduplicates_across_its_requests_per_company() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let (acme, globex) = (company("acme"), company("globex"));
    let once = [message("A1", "c")];
    let twice = [message("A1", "c"), message("A2", "c")];
    let targets = [Target::Company];
    let request = |company, events| CommitRequest {
        company,
        events,
        targets: &targets,
    };
    let results = outbox
        .commit_all(&[
            request(&acme, &once),
            request(&globex, &once),
            request(&acme, &twice),
        ])
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let flags: Vec<Vec<bool>> = results
        .iter()
        .map(|r| r.iter().map(|c| c.duplicate).collect())
        .collect();
    // The same message id in another company is another message; within
    // one company, a later request of the group sees the earlier one.
    assert_eq!(flags, [vec![false], vec![false], vec![true, false]]);
    assert_eq!(results[2][0].event_seq, results[0][0].event_seq);
    assert_eq!(outbox.event_count(&acme), 2);
    assert_eq!(outbox.event_count(&globex), 1);
    assert_eq!(outbox.queued().unwrap().len(), 3);
}

#[test]
fn racing_commits_of_the_same_messages_store_each_once() {
    let store = Store::open_temporary().unwrap();
    let acme = company("acme");
    let events: Vec<NewEvent> = (0..200).map(|i| message(&format!("M{i}"), "c")).collect();
    // Each thread has its own handle: the lock is the store's, not the
    // handle's.
    let new_events: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let outbox = store.outbox().unwrap();
                let (acme, events) = (&acme, &events);
                scope.spawn(move || {
                    events
                        .iter()
                        .map(|e| {
                            let done = outbox.commit(acme, std::slice::from_ref(e), &[]);
                            usize::from(!done.unwrap()[0].duplicate)
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(new_events, 200);
    assert_eq!(store.outbox().unwrap().event_count(&acme), 200);
}

#[test]
fn settlements_recorded_together_skip_deliveries_no_longer_queued() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let acme = company("acme");
    let events = [message("A1", "c"), message("A2", "c"), message("A3", "c")];
    let committed = outbox.commit(&acme, &events, &[Target::Company]).unwrap();
    let settled: Vec<Settled> = committed
        .iter()
        .zip([
            DeliveryState::Delivered,
            DeliveryState::Dead,
            DeliveryState::Queued,
        ])
        .map(|(c, to)| {
            let key = c.queued[0].clone();
            let mut delivery = outbox.get_queued(&key).unwrap().unwrap();
            delivery.attempts = 1;
            Settled { key, delivery, to }
        })
        .collect();
    // The first settlement again: it already left the queue, so it is
    // skipped (not written to the delivered log twice, never requeued).
    let mut again = settled[0].clone();
    again.to = DeliveryState::Queued;
    outbox
        .finish_all(&[settled.clone(), vec![again]].concat())
        .unwrap();
    let ids = |state| -> Vec<DeliveryKey> {
        outbox
            .list(&acme, state, 10)
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    };
    assert_eq!(ids(DeliveryState::Delivered), [settled[0].key.clone()]);
    assert_eq!(ids(DeliveryState::Dead), [settled[1].key.clone()]);
    let queued = outbox.queued().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0, settled[2].key);
    assert_eq!(queued[0].1.attempts, 1, "the retry's attempt is recorded");
    // A retry recorded after its delivery was removed is dropped.
    store.remove_company(&acme).unwrap();
    outbox.finish_all(&settled[2..]).unwrap();
    assert!(outbox.queued().unwrap().is_empty());
}

#[test]
fn a_settle_interrupted_by_a_crash_leaves_the_delivery_queued_and_nowhere_else() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let acme = company("acme");
    let events = [message("A1", "c"), message("A2", "c")];
    let committed = outbox.commit(&acme, &events, &[Target::Company]).unwrap();
    let (k1, k2) = (
        committed[0].queued[0].clone(),
        committed[1].queued[0].clone(),
    );
    // What `finish_all` leaves when the process dies between its two writes:
    // the new row is written, the queued one not yet removed.
    let row = outbox
        .queue
        .get(keys::outbox_delivery(&k1))
        .unwrap()
        .unwrap();
    outbox
        .delivered
        .insert(keys::outbox_delivery(&k1), row.clone())
        .unwrap();
    outbox.dead.insert(keys::outbox_delivery(&k2), row).unwrap();
    assert_eq!(outbox.repair_interrupted_settles().unwrap(), 2);
    assert!(
        outbox
            .list(&acme, DeliveryState::Delivered, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        outbox
            .list(&acme, DeliveryState::Dead, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox.queued().unwrap().len(), 2, "both are sent again");
    assert_eq!(outbox.repair_interrupted_settles().unwrap(), 0);
}

#[test]
fn replay_queues_stored_events_again_in_order() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let acme = company("acme");
    outbox
        .commit(&acme, &[message("A1", "c"), message("A2", "c")], &[])
        .unwrap();
    let keys = outbox
        .replay(&acme, 0, "message.received", &[Target::Company], 100)
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0] < keys[1]);
    let queued = outbox.queued().unwrap();
    assert_eq!(queued[0].1.event_id, "evt_A1");
    assert_eq!(queued[1].1.event_id, "evt_A2");
    let event = outbox.event(&acme, queued[0].1.event_seq).unwrap().unwrap();
    assert_eq!(event.id, "evt_A1");
}

#[test]
fn delivery_ids_round_trip_and_keys_decode() {
    let key = DeliveryKey {
        company: company("acme"),
        seq: 42,
        target: Target::Global,
    };
    assert_eq!(key.public_id(), "42-global");
    assert_eq!(
        DeliveryKey::parse_public_id(&company("acme"), "42-global"),
        Some(key.clone())
    );
    assert_eq!(DeliveryKey::parse_public_id(&company("acme"), "42-x"), None);
    assert_eq!(
        keys::parse_outbox_delivery(&keys::outbox_delivery(&key)),
        Some(key)
    );
}

#[test]
fn pruning_keeps_the_newest_rows_per_company() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    for name in ["a", "b"] {
        let c = company(name);
        let events: Vec<NewEvent> = (0..5).map(|i| message(&format!("M{i}"), "c")).collect();
        for committed in outbox.commit(&c, &events, &[Target::Company]).unwrap() {
            let key = &committed.queued[0];
            let d = outbox.get_queued(key).unwrap().unwrap();
            outbox.finish(key, &d, DeliveryState::Delivered).unwrap();
        }
    }
    assert_eq!(outbox.prune_delivered(2).unwrap(), 6);
    let kept = outbox
        .list(&company("a"), DeliveryState::Delivered, 10)
        .unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].1.event_id, "evt_M4");
}

#[test]
fn retention_prunes_by_commit_time_and_keeps_what_may_still_be_sent() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let acme = company("acme");
    let deliver = |committed: &Committed, to| {
        let key = &committed.queued[0];
        let d = outbox.get_queued(key).unwrap().unwrap();
        if to != DeliveryState::Queued {
            outbox.finish(key, &d, to).unwrap();
        }
    };
    // Before any mark nothing can be dated, so nothing is pruned.
    let old = outbox
        .commit(
            &acme,
            &[
                message("OLD-DELIVERED", "c"),
                message("OLD-DEAD", "c"),
                message("OLD-QUEUED", "c"),
            ],
            &[Target::Company],
        )
        .unwrap();
    assert_eq!(outbox.prune_before(i64::MAX).unwrap(), Pruned::default());
    deliver(&old[0], DeliveryState::Delivered);
    deliver(&old[1], DeliveryState::Dead);
    deliver(&old[2], DeliveryState::Queued);
    outbox.mark_time(1_000).unwrap();
    let new = outbox
        .commit(&acme, &[message("NEW", "c")], &[Target::Company])
        .unwrap();
    deliver(&new[0], DeliveryState::Delivered);
    outbox.mark_time(2_000).unwrap();

    // Cutoff = the mark at 1 000: only rows committed before it go, and
    // of those only the event nothing may send again.
    let pruned = outbox.prune_before(1_500).unwrap();
    assert_eq!(
        pruned,
        Pruned {
            events: 1,
            dedup_keys: 1,
            delivered: 1
        }
    );
    assert_eq!(outbox.event_count(&acme), 3);
    assert!(
        outbox.list(&acme, DeliveryState::Delivered, 10).unwrap()[0]
            .1
            .event_id
            == "evt_NEW"
    );
    // The pruned message is forgotten (a redelivery now would be new),
    // the dead and queued ones are still deduplicated.
    let again = outbox
        .commit(
            &acme,
            &[
                message("OLD-DELIVERED", "c"),
                message("OLD-DEAD", "c"),
                message("OLD-QUEUED", "c"),
                message("NEW", "c"),
            ],
            &[],
        )
        .unwrap();
    let duplicates: Vec<bool> = again.iter().map(|c| c.duplicate).collect();
    assert_eq!(duplicates, [false, true, true, true]);
    // Marks older than the cutoff mark are gone; running again is a no-op.
    assert_eq!(outbox.marks.len(), 2);
    assert_eq!(outbox.prune_before(1_500).unwrap(), Pruned::default());
}

#[test]
fn removing_a_company_removes_its_outbox_rows_only() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    outbox
        .commit(&company("a"), &[message("M", "c")], &[Target::Company])
        .unwrap();
    outbox
        .commit(&company("ab"), &[message("M", "c")], &[Target::Company])
        .unwrap();
    store.remove_company(&company("a")).unwrap();
    assert_eq!(outbox.event_count(&company("a")), 0);
    assert_eq!(outbox.event_count(&company("ab")), 1);
    assert_eq!(outbox.queued().unwrap().len(), 1);
}
