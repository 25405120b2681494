//! The shared cross-node scenarios of groups, tickets and observers (the customer-service
//! desk features), part of [`crate::cluster`]: membership and limits, ticket assignment,
//! participants, the queue and departments, observers' copies, each across three nodes.

use std::time::Duration;

use serde_json::Value;
use wsc_hub::{BroadcastOptions, Hub, HubMessage, Identity, Registration};

use super::{eventually, next_message};
use crate::WAIT;

/// A group membership made on `a` routes a group send made on `c` to `b`.
pub async fn group_membership_made_on_one_node_routes_on_another([a, b, c]: [&Hub; 3]) {
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    assert!(a.join_group("vip", "bob").await.unwrap());
    eventually("c learned the membership", || async {
        c.group_members("vip").await.unwrap() == ["bob"]
    })
    .await;
    let report = c
        .send_to_group("vip", HubMessage::text("members only"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 2, "published to a and b: {report:?}");
    assert_eq!(next_message(&mut bob).await["content"], "members only");
}

/// A group send made on `origin` after a membership change made on `origin` reaches the
/// others in that order (both travel on the channel to every node), and a broadcast after
/// it too: so `marker` being a connection's next message proves the group send did not
/// reach it.
async fn group_send_then_marker(origin: &Hub, group_id: &str) {
    origin
        .send_to_group(group_id, HubMessage::text("to the group"))
        .await
        .expect("group send");
    origin
        .broadcast(HubMessage::text("marker"), BroadcastOptions::default())
        .await
        .expect("marker broadcast");
}

/// A user added to a group while connected nowhere gets its messages once connected, on
/// whichever node: the node loads the user's memberships from the shared store. A leave
/// made on another node stops them there.
pub async fn a_membership_made_while_the_user_is_offline_reaches_the_user_on_any_node(
    [a, b, c]: [&Hub; 3],
) {
    assert!(a.join_group("club", "dora").await.unwrap());
    assert!(!c.join_group("club", "dora").await.unwrap(), "one store");
    assert_eq!(b.user_groups("dora").await.unwrap(), ["club"]);
    let mut dora = b.register(Identity::new("dora")).await.unwrap();
    let report = b
        .send_to_group("club", HubMessage::text("welcome"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "indexed at admission: {report:?}");
    assert_eq!(next_message(&mut dora).await["content"], "welcome");
    group_send_then_marker(c, "club").await;
    assert_eq!(next_message(&mut dora).await["content"], "to the group");
    assert_eq!(next_message(&mut dora).await["content"], "marker");

    assert!(a.leave_group("club", "dora").await.unwrap());
    group_send_then_marker(a, "club").await;
    assert_eq!(next_message(&mut dora).await["content"], "marker");
    assert!(c.user_groups("dora").await.unwrap().is_empty());
}

/// With limits of 3 members per group and 2 groups per user on every node, joins made at
/// the same moment on three nodes never pass either limit.
pub async fn group_limits_hold_across_nodes_under_concurrent_joins(hubs: [&Hub; 3]) {
    for hub in hubs {
        let mut config = (*hub.config()).clone();
        config.max_group_size = 3;
        config.max_groups_per_user = 2;
        hub.reconfigure(config);
    }
    let joins: Vec<_> = (0..12)
        .map(|i| {
            let hub = hubs[i % 3].clone();
            tokio::spawn(async move { hub.join_group("small", &format!("user-{i}")).await })
        })
        .chain((0..6).map(|i| {
            let hub = hubs[i % 3].clone();
            tokio::spawn(async move { hub.join_group(&format!("room-{i}"), "ivy").await })
        }))
        .collect();
    let mut results = Vec::new();
    for join in joins {
        results.push(join.await.expect("join task"));
    }
    let (small, ivy) = results.split_at(12);
    assert_eq!(small.iter().filter(|r| r == &&Ok(true)).count(), 3);
    assert_eq!(ivy.iter().filter(|r| r == &&Ok(true)).count(), 2);
    for refused in small.iter().filter(|r| r != &&Ok(true)) {
        assert!(
            matches!(
                refused,
                Err(wsc_hub::GroupError::GroupFull { limit: 3, .. })
            ),
            "{refused:?}"
        );
    }
    for refused in ivy.iter().filter(|r| r != &&Ok(true)) {
        assert!(
            matches!(
                refused,
                Err(wsc_hub::GroupError::TooManyGroups { limit: 2, .. })
            ),
            "{refused:?}"
        );
    }
    for hub in hubs {
        assert_eq!(hub.group_members("small").await.unwrap().len(), 3);
        assert_eq!(hub.user_groups("ivy").await.unwrap().len(), 2);
    }
}

/// Disbanding a group on `a` ends every membership: its members on `b` and `c` get no more
/// group messages, and nobody is listed any more.
pub async fn a_group_disbanded_on_one_node_reaches_nobody_on_any_node([a, b, c]: [&Hub; 3]) {
    let mut dora = b.register(Identity::new("dora")).await.unwrap();
    let mut eve = c.register(Identity::new("eve")).await.unwrap();
    for user in ["dora", "eve"] {
        assert!(b.join_group("band", user).await.unwrap());
    }
    group_send_then_marker(a, "band").await;
    for registration in [&mut dora, &mut eve] {
        assert_eq!(next_message(registration).await["content"], "to the group");
        assert_eq!(next_message(registration).await["content"], "marker");
    }
    assert_eq!(a.disband_group("band").await.unwrap(), ["dora", "eve"]);
    group_send_then_marker(a, "band").await;
    for registration in [&mut dora, &mut eve] {
        assert_eq!(next_message(registration).await["content"], "marker");
    }
    assert!(c.group_members("band").await.unwrap().is_empty());
    assert!(b.user_groups("dora").await.unwrap().is_empty());
}

/// An agent's connection.
async fn agent(hub: &Hub, id: &str) -> Registration {
    hub.register(Identity::new(id).with_user_type("agent"))
        .await
        .expect("agent admitted")
}

/// The next frame's (message type, ticket id, the ticket's agent).
async fn next_notice(registration: &mut Registration) -> (String, String, String) {
    let frame = next_message(registration).await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&frame["message_type"]),
        text(&frame["ticket_id"]),
        text(&frame["data"]["ticket"]["agent_id"]),
    )
}

fn notice(kind: &str, ticket: &str, agent: &str) -> (String, String, String) {
    (kind.to_owned(), ticket.to_owned(), agent.to_owned())
}

/// With a capacity of 2 tickets per agent and one agent on `b` and one on `c`, ten tickets
/// opened at the same moment on three nodes give each agent exactly 2 and queue the rest.
pub async fn the_agent_limit_holds_across_nodes_under_concurrent_opens(hubs: [&Hub; 3]) {
    for hub in hubs {
        let mut config = (*hub.config()).clone();
        config.max_tickets_per_agent = 2;
        hub.reconfigure(config);
    }
    let _a1 = agent(hubs[1], "a1").await;
    let _a2 = agent(hubs[2], "a2").await;
    let opens: Vec<_> = (0..10)
        .map(|i| {
            let hub = hubs[i % 3].clone();
            tokio::spawn(async move {
                hub.open_ticket(wsc_hub::NewTicket::new(format!("c{i}")))
                    .await
            })
        })
        .collect();
    for open in opens {
        open.await.expect("open task").expect("opened");
    }
    for hub in hubs {
        let loads: Vec<(String, usize)> = hub
            .agent_workloads()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.agent_id, a.load))
            .collect();
        assert_eq!(loads, [("a1".to_owned(), 2), ("a2".to_owned(), 2)]);
        assert_eq!(hub.ticket_queue().await.unwrap().len(), 6);
    }
}

/// A ticket opened on `a` for a customer on `c`, assigned to an agent on `b`: both get its
/// notices and its messages; once closed, its messages reach nobody.
pub async fn ticket_participants_on_other_nodes_get_its_notices_and_messages([a, b, c]: [&Hub; 3]) {
    let mut ag = agent(b, "ag").await;
    let mut cu = c.register(Identity::new("cu")).await.unwrap();
    let ticket = a
        .open_ticket(wsc_hub::NewTicket::new("cu").with_id("t-x"))
        .await
        .unwrap();
    assert_eq!(ticket.agent_id, "ag");
    assert_eq!(
        next_notice(&mut cu).await,
        notice("ticket_created", "t-x", "ag")
    );
    assert_eq!(
        next_notice(&mut cu).await,
        notice("ticket_assigned", "t-x", "ag")
    );
    assert_eq!(
        next_notice(&mut ag).await,
        notice("ticket_assigned", "t-x", "ag")
    );
    let report = a
        .send_to_ticket("t-x", HubMessage::text("on the ticket"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 2, "{report:?}");
    for registration in [&mut ag, &mut cu] {
        assert_eq!(next_message(registration).await["content"], "on the ticket");
    }
    a.close_ticket("t-x", "").await.unwrap();
    for registration in [&mut ag, &mut cu] {
        assert_eq!(
            next_notice(registration).await,
            notice("ticket_closed", "t-x", "ag")
        );
    }
    a.send_to_ticket("t-x", HubMessage::text("after close"))
        .await
        .unwrap();
    a.broadcast(HubMessage::text("marker"), BroadcastOptions::default())
        .await
        .unwrap();
    for registration in [&mut ag, &mut cu] {
        assert_eq!(next_message(registration).await["content"], "marker");
    }
}

/// A ticket opened on `a` while no agent is available waits in the queue; an agent
/// connecting on `c` takes it with the conversation so far, and the customer on `b` learns
/// it.
pub async fn a_queued_ticket_goes_to_an_agent_connecting_on_another_node([a, b, c]: [&Hub; 3]) {
    let mut cu = b.register(Identity::new("cu")).await.unwrap();
    let ticket = a
        .open_ticket(wsc_hub::NewTicket::new("cu").with_id("t-q"))
        .await
        .unwrap();
    assert_eq!(ticket.state, wsc_hub::TicketState::Queued);
    assert_eq!(
        next_notice(&mut cu).await,
        notice("ticket_created", "t-q", "")
    );
    // The customer writes while waiting; the agent gets it after the notice.
    a.send_to_ticket("t-q", HubMessage::text("anyone?"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut cu).await["content"], "anyone?");
    eventually("the message is kept for the agent", || async {
        c.ticket_store().history("t-q").await.unwrap().len() == 1
    })
    .await;
    let mut late = agent(c, "late").await;
    assert_eq!(
        next_notice(&mut late).await,
        notice("ticket_assigned", "t-q", "late")
    );
    let kept = next_message(&mut late).await;
    assert_eq!(
        (kept["content"].as_str(), kept["source"].as_str()),
        (Some("anyone?"), Some("offline"))
    );
    assert_eq!(
        next_notice(&mut cu).await,
        notice("ticket_assigned", "t-q", "late")
    );
    assert!(b.ticket_queue().await.unwrap().is_empty());
    assert_eq!(b.ticket("t-q").await.unwrap().unwrap().agent_id, "late");
}

/// Frames of a registration up to the next `marker` broadcast, as (content, whether a
/// marked observer copy).
async fn until_marker(registration: &mut Registration) -> Vec<(String, bool)> {
    let mut seen = Vec::new();
    loop {
        let frame = next_message(registration).await;
        let content = frame["content"].as_str().unwrap_or_default().to_owned();
        if content == "marker" {
            return seen;
        }
        let copy = frame["data"]["metadata"]["observer_mode"] == Value::Bool(true);
        seen.push((content, copy));
    }
}

/// A global observer on `c` and a namespace observer on `b`: sends made on `a` to a user on
/// `b` reach each observer once, marked, in its scope only; a message kept offline is not
/// copied.
pub async fn observers_on_other_nodes_get_one_copy_of_each_send_in_their_scope(
    [a, b, c]: [&Hub; 3],
) {
    let mut global = c
        .register(Identity::new("sup").with_user_type("observer"))
        .await
        .unwrap();
    let mut shop = b
        .register(
            Identity::new("sup-shop")
                .with_user_type("observer")
                .with_scope("", "shop"),
        )
        .await
        .unwrap();
    let _bob = b.register(Identity::new("bob")).await.unwrap();
    let marker = || a.broadcast(HubMessage::text("marker"), BroadcastOptions::default());
    // The observers' nodes announce them; until `a` has heard, its sends carry no copy.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        a.send_to_user("bob", HubMessage::text("probe"))
            .await
            .unwrap();
        marker().await.unwrap();
        // The shop observer sees no probe (out of its scope), only the marker.
        assert!(until_marker(&mut shop).await.is_empty());
        if !until_marker(&mut global).await.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never learned of the observers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let shop_msg = HubMessage {
        namespace: "shop".into(),
        ..HubMessage::text("shop news")
    };
    a.send_to_user("bob", HubMessage::text("plain"))
        .await
        .unwrap();
    a.send_to_user("nobody", HubMessage::text("kept"))
        .await
        .unwrap();
    a.send_to_user("bob", shop_msg).await.unwrap();
    marker().await.unwrap();
    let copy = |text: &str| (text.to_owned(), true);
    assert_eq!(
        until_marker(&mut global).await,
        [copy("plain"), copy("shop news")]
    );
    assert_eq!(until_marker(&mut shop).await, [copy("shop news")]);
}

/// A ticket asking for a department waits while only other agents are online, even with
/// room, and goes to an agent of that department (a group of its connection) who connects
/// on another node; a plain ticket goes to anyone.
pub async fn a_department_ticket_waits_for_an_agent_of_its_department_on_any_node(
    [a, b, c]: [&Hub; 3],
) {
    let _plain = agent(b, "plain").await;
    let billing = a
        .open_ticket(
            wsc_hub::NewTicket::new("cu")
                .with_id("t-bill")
                .with_department("billing"),
        )
        .await
        .unwrap();
    assert_eq!(billing.state, wsc_hub::TicketState::Queued);
    let other = a
        .open_ticket(wsc_hub::NewTicket::new("cu").with_id("t-any"))
        .await
        .unwrap();
    assert_eq!(other.agent_id, "plain");
    let _biller = c
        .register(
            Identity::new("biller")
                .with_user_type("agent")
                .with_groups(["billing"]),
        )
        .await
        .unwrap();
    assert_eq!(
        b.ticket("t-bill").await.unwrap().unwrap().agent_id,
        "biller"
    );
    let skills: Vec<(String, Vec<String>)> = a
        .agent_workloads()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.agent_id, w.skills))
        .collect();
    assert_eq!(
        skills,
        [
            ("biller".to_owned(), vec!["billing".to_owned()]),
            ("plain".to_owned(), vec![])
        ]
    );
}
