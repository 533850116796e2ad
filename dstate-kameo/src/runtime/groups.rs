//! Processing groups: named sets of actor refs, per runtime.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Mutex;

use kameo::actor::ActorId;

use super::actor::KameoRef;

struct Member {
    id: ActorId,
    message_type: TypeId,
    actor: Box<dyn Any + Send + Sync>,
    is_alive: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Group name to members. A member is kept once however often it joins.
#[derive(Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Vec<Member>>>,
}

impl Groups {
    pub(crate) fn join<M: Send + 'static>(&self, group: &str, actor: &KameoRef<M>) {
        let mut groups = self.lock();
        let members = groups.entry(group.to_owned()).or_default();
        members.retain(is_alive_member);
        if members.iter().any(|member| member.id == actor.id()) {
            return;
        }
        members.push(Member {
            id: actor.id(),
            message_type: TypeId::of::<M>(),
            actor: Box::new(actor.clone()),
            is_alive: {
                let actor = actor.clone();
                Box::new(move || actor.is_alive())
            },
        });
    }

    pub(crate) fn leave<M: Send + 'static>(&self, group: &str, actor: &KameoRef<M>) {
        let mut groups = self.lock();
        if let Some(members) = groups.get_mut(group) {
            members.retain(|member| member.id != actor.id());
            if members.is_empty() {
                groups.remove(group);
            }
        }
    }

    pub(crate) fn members<M: Send + 'static>(&self, group: &str) -> Vec<KameoRef<M>> {
        let mut groups = self.lock();
        let Some(members) = groups.get_mut(group) else {
            return Vec::new();
        };
        members.retain(is_alive_member);
        members
            .iter()
            .filter(|member| member.message_type == TypeId::of::<M>())
            .filter_map(|member| member.actor.downcast_ref::<KameoRef<M>>().cloned())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Member>>> {
        // Every critical section leaves the map valid, so a poisoned lock is still usable.
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Stopped actors leave their groups the next time the group is touched.
fn is_alive_member(member: &Member) -> bool {
    (member.is_alive)()
}
