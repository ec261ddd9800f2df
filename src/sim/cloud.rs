//! [`SimWorld`] behind the [`CloudBackend`] trait: the daemon's trackers,
//! advisors and actuator run unchanged against it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::SimWorld;
use crate::clock::SharedClock;
use crate::cloud::{CloudBackend, CloudError, GroupDescription, TableDescription, Throughput};

/// A shared simulated account read through a clock.
#[derive(Clone)]
pub struct SimCloud {
    pub world: Arc<Mutex<SimWorld>>,
    pub clock: SharedClock,
    /// How long a call hangs before a simulated timeout fails it.
    pub timeout: Duration,
}

impl SimCloud {
    pub fn new(world: SimWorld, clock: SharedClock) -> Self {
        Self {
            world: Arc::new(Mutex::new(world)),
            clock,
            timeout: Duration::from_secs(3),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, SimWorld> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one call, waiting first when the call is to time out.
    async fn call<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut SimWorld, chrono::DateTime<chrono::Utc>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let hangs = self
            .world()
            .next_call_times_out(operation, self.clock.now());
        if hangs {
            tokio::time::sleep(self.timeout).await;
        }
        let now = self.clock.now();
        f(&mut self.world(), now)
    }
}

impl CloudBackend for SimCloud {
    async fn describe_table(&self, name: &str) -> Result<TableDescription, CloudError> {
        self.call("DescribeTable", |w, now| w.describe_table(name, now))
            .await
    }

    async fn describe_group(&self, name: &str) -> Result<GroupDescription, CloudError> {
        self.call("DescribeAutoScalingGroups", |w, now| {
            w.describe_group(name, now)
        })
        .await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.call("SetDesiredCapacity", |w, now| {
            w.set_desired_capacity(group, desired, now)
        })
        .await
    }

    async fn scaling_policies(&self, _group: &str) -> Result<Vec<String>, CloudError> {
        Ok(Vec::new())
    }

    async fn group_of_instance(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        self.call("DescribeAutoScalingInstances", |w, now| {
            w.group_of_instance(instance_id, now)
        })
        .await
    }

    async fn update_capacity(
        &self,
        table: &str,
        index: Option<&str>,
        capacity: Throughput,
    ) -> Result<(), CloudError> {
        self.call("UpdateTable", |w, now| {
            w.update_capacity(table, index, capacity, now)
        })
        .await
    }
}
