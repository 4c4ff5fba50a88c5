//! A fake platform for the fault tests: it records every control call, and its rollouts
//! complete after a set time (use with paused tokio time).

use crate::control::{
    CpuLimiter, DatabaseControl, MemoryLimiter, ProxyControl, RevisionChange, RolloutDriver,
    RolloutOutcome, VolumeFiller,
};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::fault_proxy::Toxic;
use std::time::Duration;

#[derive(Debug, PartialEq)]
pub enum Call {
    AddToxic(String, Toxic),
    ClearToxics(String),
    SetDown(String, bool),
    Fill(String, String),
    Free(String, String),
    StartRollout(String, String),
    Rollback(String),
    StopDatabase,
    StartDatabase,
    LimitMemory(String, Option<u64>),
    LimitCpu(String, Option<u32>),
}

#[derive(Default)]
pub struct FakePlatform {
    pub calls: Vec<Call>,
    /// Proxies that exist (empty: any name does).
    pub known_proxies: Vec<String>,
    pub rollout_takes: Duration,
}

impl FakePlatform {
    fn check(&self, proxy: &str) -> Result<()> {
        if self.known_proxies.is_empty() || self.known_proxies.iter().any(|p| p == proxy) {
            Ok(())
        } else {
            Err(BrownoutError::BadInput(format!(
                "no fault proxy '{proxy}' is running"
            )))
        }
    }
}

impl ProxyControl for FakePlatform {
    async fn add_toxic(&mut self, proxy: &str, toxic: Toxic) -> Result<()> {
        self.check(proxy)?;
        self.calls.push(Call::AddToxic(proxy.into(), toxic));
        Ok(())
    }
    async fn clear_toxics(&mut self, proxy: &str) -> Result<()> {
        self.check(proxy)?;
        self.calls.push(Call::ClearToxics(proxy.into()));
        Ok(())
    }
    async fn set_down(&mut self, proxy: &str, down: bool) -> Result<()> {
        self.check(proxy)?;
        self.calls.push(Call::SetDown(proxy.into(), down));
        Ok(())
    }
}

impl VolumeFiller for FakePlatform {
    async fn fill_volume(&mut self, service: &str, volume: &str, _: &Evidence) -> Result<()> {
        self.calls.push(Call::Fill(service.into(), volume.into()));
        Ok(())
    }
    async fn free_volume(&mut self, service: &str, volume: &str, _: &Evidence) {
        self.calls.push(Call::Free(service.into(), volume.into()));
    }
}

impl DatabaseControl for FakePlatform {
    async fn stop_database(&mut self, _: &Evidence) -> Result<()> {
        self.calls.push(Call::StopDatabase);
        Ok(())
    }
    async fn start_database(&mut self, _: &Evidence) -> Result<()> {
        self.calls.push(Call::StartDatabase);
        Ok(())
    }
}

impl MemoryLimiter for FakePlatform {
    async fn limit_memory(
        &mut self,
        service: &str,
        bytes: Option<u64>,
        _: &Evidence,
    ) -> Result<()> {
        self.calls.push(Call::LimitMemory(service.into(), bytes));
        Ok(())
    }
}

impl CpuLimiter for FakePlatform {
    async fn limit_cpu(
        &mut self,
        service: &str,
        millicpus: Option<u32>,
        _: &Evidence,
    ) -> Result<()> {
        self.calls.push(Call::LimitCpu(service.into(), millicpus));
        Ok(())
    }
}

impl RolloutDriver for FakePlatform {
    async fn start_rollout(
        &mut self,
        service: &str,
        change: &RevisionChange,
        _deadline: Duration,
        _: &Evidence,
    ) -> Result<tokio::task::JoinHandle<RolloutOutcome>> {
        self.calls
            .push(Call::StartRollout(service.into(), change.describe()));
        let took = self.rollout_takes;
        Ok(tokio::spawn(async move {
            tokio::time::sleep(took).await;
            RolloutOutcome::Complete { took }
        }))
    }
    async fn rollback(&mut self, service: &str, _: &Evidence) {
        self.calls.push(Call::Rollback(service.into()));
    }
}
