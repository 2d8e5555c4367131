//! Stage 2: the engine task.
//!
//! The one place that owns the [`Engine`] (single-threaded by design: the
//! engine is a deterministic state machine). It takes input messages from the
//! consumer stage, feeds them to the engine, numbers the KPI records and dead
//! letters it emits and sends them to the producer stage. A periodic tick
//! re-evaluates partition idleness, so windows close on a quiet stream; a
//! periodic checkpoint drives the commit logic of [`super::commit`].
//!
//! Shutdown (the consumer stage stops and drops its sender): the remaining
//! buffered messages are processed, the engine ticks once (or, for bounded
//! test inputs, runs its end-of-input flush), the producer stage is closed and
//! flushed, and the last safe offsets are committed synchronously.

use super::checkpoints::{self, Checkpointer, Stored};
use super::commit::{CommitPlan, CommitTracker, Horizon, PartitionId};
use super::kafka_sink::{DeadLetterMessage, SinkMessage, TxnCommit, TxnError};
use super::kafka_source::{InputMessage, Source, SourceEvent};
use super::summary::Summary;
use super::{Stats, StopMode};
use crate::decode::DecodeError;
use crate::engine::kpi::Kpi;
use crate::engine::{Counters, Engine, Outcome};
use crate::record::KpiRecord;
use crate::time::{duration_name, format_rfc3339, wall_clock_now, Micros};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub struct Processor {
    pub engine: Engine,
    pub tracker: CommitTracker,
    pub consumer: Arc<Source>,
    /// To the producer stage; `None` once closed at shutdown.
    pub out: Option<mpsc::Sender<SinkMessage>>,
    pub stats: Arc<Stats>,
    pub input_topics: Vec<Arc<str>>,
    pub late_to_dead_letter: bool,
    pub tick_interval: Duration,
    pub commit_interval: Duration,
    pub summary_interval: Option<Duration>,
    pub summary: Summary,
    /// How long shutdown waits for outstanding acknowledgements.
    pub shutdown_timeout: Duration,
    /// Sequence number of the last record handed to the producer stage.
    pub seq: u64,
    pub records: Vec<KpiRecord>,
    /// `pipeline.max_partition_skew` (see [`Processor::align`]).
    pub max_skew: Option<Micros>,
    /// `pipeline.max_future`: events further ahead of the wall clock are
    /// rejected (`future_ts`).
    pub max_future: Option<Micros>,
    /// Assigned partitions: engine id → (topic, partition).
    pub partitions: HashMap<PartitionId, (Arc<str>, i32)>,
    /// Partitions paused by [`Processor::align`].
    pub paused: HashSet<PartitionId>,
    /// Messages handled since the last alignment check.
    pub since_align: u32,
    /// Engine counters as last published to the metrics.
    pub published: Counters,
    /// Distribution samples tapped from the engine (metrics histograms).
    pub samples: Vec<(Kpi, f64)>,
    /// Checkpoint-driven commits (see [`super::checkpoints`]); `None` with
    /// `checkpoint.store = "none"` (release-time commits of [`super::commit`]).
    pub checkpoints: Option<Checkpointer>,
    pub checkpoint_interval: Duration,
    /// Exactly-once: the state topic (checkpoints go into the transaction).
    pub exactly_once: Option<String>,
    /// Why the pipeline failed on its own (a transaction that did not commit).
    pub failure: Option<TxnError>,
    /// No broker was reachable at the last tick (see [`Processor::tick`]).
    pub input_down: bool,
}

/// Why sending to the producer stage stopped.
struct SinkClosed;

/// What the select loop woke up for.
enum Step {
    Tick,
    Commit,
    Checkpoint,
    Summary,
    Input(SourceEvent),
}

impl Processor {
    /// Runs until the consumer stage closes its channel, then shuts down as
    /// the module docs say. `sink` and `acks` are the later stages' tasks.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<SourceEvent>,
        stop: watch::Receiver<StopMode>,
        sink: JoinHandle<anyhow::Result<()>>,
        acks: JoinHandle<anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.tick_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commit = tokio::time::interval(self.commit_interval);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut summary =
            tokio::time::interval(self.summary_interval.unwrap_or(Duration::from_secs(3600)));
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        summary.tick().await; // the first tick is immediate
        let mut ckpt = tokio::time::interval(self.checkpoint_interval);
        ckpt.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ckpt.tick().await;
        // Exactly-once checkpoints with every transaction instead.
        let checkpointing = self.checkpoints.is_some() && self.exactly_once.is_none();
        let mut sink_open = true;
        loop {
            // Timers first (`biased`): a busy input channel must not starve
            // idleness ticks and commits.
            let step = tokio::select! {
                biased;
                _ = tick.tick() => Step::Tick,
                _ = commit.tick() => Step::Commit,
                _ = ckpt.tick(), if checkpointing => Step::Checkpoint,
                _ = summary.tick(), if self.summary_interval.is_some() => Step::Summary,
                event = input.recv() => match event {
                    Some(e) => Step::Input(e),
                    None => break, // the consumer stage stopped
                },
            };
            let r = match step {
                // A later stage that ended on its own failed (a delivery
                // failed for good): stop consuming, report it below.
                Step::Tick if sink.is_finished() || acks.is_finished() => Err(SinkClosed),
                Step::Tick => self.tick().await,
                Step::Commit if self.exactly_once.is_some() => self.transact().await,
                Step::Commit => {
                    if checkpointing {
                        self.store_checkpoint_and_commit(CommitMode::Async).await;
                    } else {
                        self.checkpoint_and_commit(CommitMode::Async);
                    }
                    Ok(())
                }
                Step::Checkpoint => {
                    self.take_checkpoint();
                    Ok(())
                }
                Step::Summary => {
                    self.publish_counters();
                    self.summary.report(&self.engine, &self.stats);
                    Ok(())
                }
                Step::Input(e) => self.handle(e).await,
            };
            if r.is_err() {
                // The producer stage is gone (a delivery failed): stop
                // consuming; the error is reported when joining it below.
                sink_open = false;
                break;
            }
        }
        // Shutdown. Drain what the consumer already handed over (unless the
        // producer stage is gone: then nothing more can be made safe).
        input.close();
        if sink_open {
            while let Some(e) = input.recv().await {
                if self.handle(e).await.is_err() {
                    sink_open = false;
                    break;
                }
            }
        }
        if sink_open {
            let wall = wall_clock_now();
            let mode = *stop.borrow();
            if mode == StopMode::Finish {
                // End of a bounded input (tests, backfills): process every
                // buffered event and timer, fire every window.
                self.engine.finish(&mut self.records);
            } else {
                self.engine.tick(wall, &mut self.records);
            }
            let _ = self.send_records().await;
            if self.exactly_once.is_some() && self.failure.is_none() {
                // The last transaction: everything up to the stop.
                let _ = self.transact().await;
            }
        }
        let watermark = self.engine.watermark();
        self.publish_counters();
        self.publish_metrics(wall_clock_now());
        self.tracker.checkpoint(watermark, self.seq);
        // Close the producer stage: it enqueues the rest and flushes.
        self.out = None;
        // Both later stages get `shutdown_timeout` (plus a little) in all: a
        // broker that stays away must not hang the shutdown. Whatever is not
        // acknowledged by then stays uncommitted (and is produced again after
        // the restart).
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout + Duration::from_secs(2);
        let sink_result = match tokio::time::timeout_at(deadline, sink).await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("producer task: {e}"))?,
            Err(_) => Err(anyhow::anyhow!("the producer did not finish in time")),
        };
        let ack_result = match tokio::time::timeout_at(deadline, acks).await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("acknowledgement task: {e}"))?,
            Err(_) => {
                tracing::warn!(
                    "records still unacknowledged at shutdown; their offsets stay uncommitted"
                );
                Ok(())
            }
        };
        // The last commit: whatever the acknowledgements now cover (with
        // checkpoints: a final checkpoint of the state after the flush).
        let acked = self.stats.acked_through.load(Ordering::Acquire);
        if self.exactly_once.is_some() {
            // Committed with the last transaction above.
        } else if self.checkpoints.is_some() {
            tracing::debug!(acked, seq = self.seq, sink_open, "final checkpoint");
            if sink_open && acked >= self.seq {
                self.take_checkpoint();
            }
            self.store_checkpoint_and_commit(CommitMode::Sync).await;
        } else if let Some(plan) = self.tracker.ready(acked) {
            self.commit(&plan, CommitMode::Sync);
        }
        self.stats.watermark.store(watermark, Ordering::Relaxed);
        let c = self.engine.counters();
        tracing::info!(
            accepted = c.accepted,
            invalid = c.invalid,
            duplicates = c.duplicates,
            late = c.late,
            late_dropped = c.late_dropped,
            records = c.records,
            acked_through = acked,
            emitted = self.seq,
            watermark = %fmt_time(watermark),
            "pipeline stopped"
        );
        self.consumer.unsubscribe();
        if let Some(e) = self.failure.take() {
            return Err(e.into());
        }
        sink_result?;
        ack_result?;
        Ok(())
    }

    /// One input message: decode, policy checks, engine, dead letters.
    async fn handle_message(&mut self, m: InputMessage) -> Result<(), SinkClosed> {
        let wall = wall_clock_now();
        let topic = self.input_topics[m.topic].clone();
        let metrics = self.stats.metrics.clone();
        metrics.messages_consumed.with_label_values(&[&topic]).inc();
        if self
            .tracker
            .next_offset(m.pid)
            .is_some_and(|next| m.offset < next)
        {
            // Re-delivered (a rebalance gave the partition back, or a
            // resumed partition was fetched again from before what was
            // delivered): the engine already has it (see commit.rs).
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            metrics
                .messages_redelivered
                .with_label_values(&[&topic])
                .inc();
            return Ok(());
        }
        self.stats.processed.fetch_add(1, Ordering::Relaxed);
        self.since_align += 1;
        if self.since_align >= 512 {
            self.align();
        }
        let decoded = self
            .engine
            .decode(&m.payload)
            .and_then(|ev| match self.max_future {
                Some(max) if ev.ts > wall.saturating_add(max) => Err(DecodeError::Future {
                    ts: format_rfc3339(ev.ts),
                    limit: duration_name(max),
                    wall: format_rfc3339(wall),
                }),
                _ => Ok(ev),
            });
        match decoded {
            Ok(ev) => {
                let outcome = self.engine.process(m.pid, ev, wall, &mut self.records);
                self.tracker.track_event(m.pid, m.offset, &ev);
                if outcome != Outcome::Duplicate {
                    metrics.observe_event(&topic, &ev);
                }
                self.engine.take_samples(&mut self.samples);
                if !self.samples.is_empty() {
                    metrics.observe_samples(&self.samples);
                    self.samples.clear();
                }
                let emitted = !self.records.is_empty();
                self.send_records().await?;
                if emitted {
                    metrics
                        .processing_latency
                        .observe(m.received.elapsed().as_secs_f64());
                }
                if outcome == Outcome::LateDropped && self.late_to_dead_letter {
                    let watermark = self.engine.watermark();
                    let letter = DeadLetterMessage {
                        reason: format!(
                            "late: event time {} is beyond allowed_lateness for at least one window (watermark {})",
                            format_rfc3339(ev.ts),
                            fmt_time(watermark)
                        ),
                        key: m.key,
                        payload: m.payload,
                        kind: "late",
                        reason_code: "late",
                        field: Some("ts".into()),
                        source_topic: self.input_topics[m.topic].clone(),
                        source_partition: m.partition,
                        source_offset: m.offset,
                    };
                    self.send_dead_letter(letter).await?;
                }
            }
            Err(err) => {
                // Count it and mark the partition alive.
                self.engine.reject(m.pid, wall);
                self.tracker.track_other(m.pid, m.offset);
                metrics.observe_invalid(&topic, err.kind());
                let letter = DeadLetterMessage {
                    reason: err.to_string(),
                    reason_code: err.kind(),
                    field: err.field().map(str::to_string),
                    key: m.key,
                    payload: m.payload,
                    kind: "invalid",
                    source_topic: self.input_topics[m.topic].clone(),
                    source_partition: m.partition,
                    source_offset: m.offset,
                };
                self.send_dead_letter(letter).await?;
                self.send_records().await?;
            }
        }
        Ok(())
    }

    async fn handle(&mut self, event: SourceEvent) -> Result<(), SinkClosed> {
        match event {
            SourceEvent::Messages(batch) => {
                for m in batch {
                    self.handle_message(m).await?;
                }
            }
            SourceEvent::Assigned(parts) => {
                let wall = wall_clock_now();
                self.stats
                    .assigned_partitions
                    .fetch_add(parts.len() as u64, Ordering::Relaxed);
                self.stats.assignments.fetch_add(1, Ordering::Relaxed);
                // librdkafka keeps an application pause across a revoke and a
                // later re-assignment: start every assigned partition resumed.
                let mut tpl = TopicPartitionList::new();
                for a in &parts {
                    tpl.add_partition(&a.topic, a.partition);
                }
                if let Err(e) = self.consumer.resume(&tpl) {
                    tracing::debug!(error = %e, "resuming newly assigned partitions");
                }
                let restored = self.restore_checkpoint().await;
                for a in parts {
                    self.partitions
                        .insert(a.pid, (Arc::from(a.topic.as_str()), a.partition));
                    self.engine.assign(a.pid, wall);
                    self.tracker
                        .assign(a.pid, a.topic.into(), a.partition, a.metadata.as_deref());
                }
                if let Some(c) = restored {
                    self.resume_partitions(&c);
                }
                let r = self.tracker.resume_watermark();
                if r > Micros::MIN {
                    tracing::info!(
                        resume_watermark = %fmt_time(r),
                        "resuming: records of windows final before the restart are suppressed"
                    );
                }
            }
            SourceEvent::Revoked(parts) => {
                let n = parts.len() as u64;
                let _ = self.stats.assigned_partitions.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |a| Some(a.saturating_sub(n)),
                );
                // The engine keeps the partition's watermark clock: with the
                // eager protocol every rebalance revokes all partitions and
                // assigns them again, and dropping the clocks one by one would
                // let the watermark jump to the fastest partition (making the
                // others' events late). A partition that does not come back
                // simply goes idle after `idle_timeout` and stops holding the
                // watermark, as a quiet one does.
                for (pid, topic, partition) in parts {
                    self.stats.metrics.remove_partition(&topic, partition);
                    self.partitions.remove(&pid);
                    self.paused.remove(&pid);
                    self.tracker.revoke(pid);
                }
            }
        }
        Ok(())
    }

    /// Periodic: partition idleness at wall time, so windows close on a
    /// quiet stream. Not while no broker is reachable: an outage is not a
    /// quiet stream, and treating it as one would fire windows before the
    /// data behind the outage is read. When brokers are back, the partitions'
    /// activity clocks restart (the outage does not count as idle time).
    async fn tick(&mut self) -> Result<(), SinkClosed> {
        let wall = wall_clock_now();
        let reachable = self.stats.input_reachable.load(Ordering::Relaxed);
        if !reachable {
            self.input_down = true;
        } else {
            if std::mem::take(&mut self.input_down) {
                self.engine.resume(wall);
            }
            self.engine.tick(wall, &mut self.records);
        }
        self.align();
        self.stats
            .watermark
            .store(self.engine.watermark(), Ordering::Relaxed);
        self.publish_metrics(wall);
        self.send_records().await
    }

    /// Gauges and engine counters for `/metrics`, and readiness.
    fn publish_metrics(&mut self, wall: Micros) {
        let m = &self.stats.metrics;
        m.publish_engine(self.engine.counters(), &mut self.published);
        m.set_watermark(self.engine.watermark(), wall);
        m.set_open_entities(self.engine.entity_counts());
        let ooo = self.engine.settings().max_out_of_orderness;
        for (pid, max_ts, idle) in self.engine.watermarks().partitions() {
            if let Some((topic, partition)) = self.partitions.get(&pid) {
                m.set_partition(topic, *partition, max_ts.map(|t| t - ooo), idle);
            }
        }
        let assigned = self.stats.assigned_partitions.load(Ordering::Relaxed);
        m.assigned_partitions.set(assigned as i64);
        m.paused_partitions.set(self.paused.len() as i64);
        m.update_readiness(assigned, self.stats.consumer_lag.load(Ordering::Relaxed));
    }

    /// Sends the engine's pending KPI records to the producer stage, waiting
    /// for capacity (backpressure), skipping suppressed ones.
    async fn send_records(&mut self) -> Result<(), SinkClosed> {
        if self.records.is_empty() {
            return Ok(());
        }
        let mut records = std::mem::take(&mut self.records);
        let before = records.len();
        records.retain(|r| !self.tracker.suppress(r));
        self.stats
            .suppressed
            .fetch_add((before - records.len()) as u64, Ordering::Relaxed);
        self.stats
            .metrics
            .observe_records(&records, wall_clock_now());
        for r in records {
            self.summary.observe(&r);
            self.seq += 1;
            self.send(SinkMessage::Kpi {
                seq: self.seq,
                record: r,
            })
            .await?;
        }
        Ok(())
    }

    async fn send_dead_letter(&mut self, letter: DeadLetterMessage) -> Result<(), SinkClosed> {
        self.seq += 1;
        self.send(SinkMessage::DeadLetter {
            seq: self.seq,
            letter,
        })
        .await
    }

    async fn send(&mut self, msg: SinkMessage) -> Result<(), SinkClosed> {
        match &self.out {
            Some(out) => out.send(msg).await.map_err(|_| SinkClosed),
            None => Err(SinkClosed),
        }
    }

    /// Bounds the event-time buffer when partitions are read unevenly
    /// (catching up a backlog): a partition whose latest event time runs more
    /// than `max_partition_skew` ahead of the slowest active partition is
    /// paused (its data waits in Kafka, not in memory) and resumed once the
    /// others are within half of that. Partitions with no data yet, or idle
    /// ones, do not count as the slowest, so pausing can never stall the
    /// pipeline: at worst everything goes idle and is resumed.
    fn align(&mut self) {
        self.since_align = 0;
        let Some(skew) = self.max_skew else {
            return;
        };
        let reference = self
            .engine
            .watermarks()
            .partitions()
            .filter(|(_, _, idle)| !idle)
            .filter_map(|(_, max_ts, _)| max_ts)
            .min();
        let mut pause = Vec::new();
        let mut resume = Vec::new();
        for (pid, max_ts, _) in self.engine.watermarks().partitions() {
            let is_paused = self.paused.contains(&pid);
            match (reference, max_ts) {
                (Some(r), Some(m)) if !is_paused && m > r.saturating_add(skew) => pause.push(pid),
                (Some(r), Some(m)) if is_paused && m <= r.saturating_add(skew / 2) => {
                    resume.push(pid)
                }
                (None, _) if is_paused => resume.push(pid),
                _ => {}
            }
        }
        if !pause.is_empty() {
            self.pause_resume(&pause, true);
        }
        if !resume.is_empty() {
            self.pause_resume(&resume, false);
        }
    }

    fn pause_resume(&mut self, pids: &[PartitionId], pause: bool) {
        let mut tpl = TopicPartitionList::new();
        for pid in pids {
            if let Some((topic, partition)) = self.partitions.get(pid) {
                tpl.add_partition(topic, *partition);
            }
        }
        let r = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match r {
            Ok(()) => {
                if pause {
                    self.stats
                        .pauses
                        .fetch_add(pids.len() as u64, Ordering::Relaxed);
                }
                for pid in pids {
                    if pause {
                        self.paused.insert(*pid);
                    } else {
                        self.paused.remove(pid);
                    }
                }
                tracing::debug!(partitions = pids.len(), pause, "partition alignment");
            }
            Err(e) => tracing::warn!(error = %e, pause, "pausing/resuming partitions failed"),
        }
        self.stats
            .paused_partitions
            .store(self.paused.len() as u64, Ordering::Relaxed);
    }

    fn publish_counters(&self) {
        let c = self.engine.counters();
        let s = &self.stats;
        s.accepted.store(c.accepted, Ordering::Relaxed);
        s.invalid.store(c.invalid, Ordering::Relaxed);
        s.duplicates.store(c.duplicates, Ordering::Relaxed);
        s.late.store(c.late, Ordering::Relaxed);
        s.late_dropped.store(c.late_dropped, Ordering::Relaxed);
        s.emitted.store(self.seq, Ordering::Relaxed);
    }

    /// Restores the latest stored checkpoint on the first assignment (see
    /// [`super::checkpoints`]). Returns it so its offsets can be resumed.
    async fn restore_checkpoint(&mut self) -> Option<crate::checkpoint::Checkpoint> {
        let ck = self.checkpoints.as_mut()?;
        let started = std::time::Instant::now();
        let c = match ck.restore_once().await {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, store = %ck.describe(), "cannot read the latest checkpoint; starting from the committed offsets with empty state");
                return None;
            }
        };
        let settings = self.engine.settings().clone();
        match Engine::restore(&c.engine, &settings) {
            Ok(mut engine) => {
                engine.tap_samples(true);
                engine.resume(wall_clock_now());
                self.engine = engine;
                // Metrics count from this process's start: what the
                // restored counters already hold is not counted again.
                self.published = self.engine.counters().clone();
                let [t, ch, ca, su] = self.engine.entity_counts();
                tracing::info!(
                    epoch = c.epoch,
                    bytes = c.engine.len(),
                    ms = started.elapsed().as_millis() as u64,
                    watermark = %fmt_time(c.watermark),
                    open_tickets = t,
                    open_chats = ch,
                    open_carts = ca,
                    subscriptions = su,
                    partitions = c.offsets.len(),
                    "restored the engine state from the latest checkpoint"
                );
                Some(c)
            }
            Err(e) => {
                tracing::error!(error = %e, epoch = c.epoch, "the latest checkpoint cannot be restored; starting from the committed offsets with empty state");
                None
            }
        }
    }

    /// After a restore: every assigned partition continues at the
    /// checkpoint's offset. No seek: committed offsets are never ahead of a
    /// stored checkpoint and at most one checkpoint interval behind it, so
    /// the consumer starts at or just before it and the messages below it
    /// are skipped (a seek racing with the first fetches would deliver them
    /// twice instead).
    fn resume_partitions(&mut self, c: &crate::checkpoint::Checkpoint) {
        for (pid, (topic, partition)) in &self.partitions {
            if let Some(offset) = c.offset(topic, *partition) {
                self.tracker.resume_at(*pid, offset);
            }
        }
    }

    /// Takes a checkpoint of the engine now (stored once acknowledged).
    fn take_checkpoint(&mut self) {
        let offsets = self.tracker.positions();
        if let Some(ck) = self.checkpoints.as_mut() {
            if let Some(bytes) = ck.take(&self.engine, offsets, self.seq, wall_clock_now()) {
                self.stats.metrics.state_bytes.set(bytes as i64);
            }
        }
    }

    /// Exactly-once: commits the open transaction with a checkpoint of the
    /// engine now and the next offsets of the assigned partitions (see
    /// `kafka_sink`). Nothing changed since the last one: nothing to do.
    async fn transact(&mut self) -> Result<(), SinkClosed> {
        let Some(state_topic) = self.exactly_once.clone() else {
            return Ok(());
        };
        let Some(group) = self.consumer.group_metadata() else {
            return Ok(());
        };
        let positions = self.tracker.positions();
        let mut offsets = TopicPartitionList::new();
        for (pid, (topic, partition)) in &self.partitions {
            if !self.tracker.is_assigned(*pid) {
                continue;
            }
            if let Some((_, _, o)) = positions
                .iter()
                .find(|(t, p, _)| t == topic && p == partition)
            {
                let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(*o));
            }
        }
        let ck = self
            .checkpoints
            .as_mut()
            .expect("exactly-once always has a checkpointer");
        let Some(bytes) = ck.take(&self.engine, positions, self.seq, wall_clock_now()) else {
            return Ok(());
        };
        let (state, manifest) = ck.transaction_records();
        let (reply, done) = tokio::sync::oneshot::channel();
        self.send(SinkMessage::Commit(Box::new(TxnCommit {
            offsets,
            group,
            state_topic,
            state,
            reply,
        })))
        .await?;
        match done.await {
            Ok(Ok(())) => {
                if let Some(ck) = self.checkpoints.as_mut() {
                    ck.transaction_committed(manifest);
                }
                self.stats.metrics.checkpoints.inc();
                self.stats.metrics.state_bytes.set(bytes as i64);
                self.stats.metrics.commits.with_label_values(&["ok"]).inc();
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => {
                self.stats
                    .metrics
                    .commits
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(error = %e, "exactly-once transaction failed");
                self.failure = Some(e);
                Err(SinkClosed)
            }
            Err(_) => Err(SinkClosed),
        }
    }

    /// Stores the pending checkpoint once its records are acknowledged, then
    /// commits its offsets.
    async fn store_checkpoint_and_commit(&mut self, mode: CommitMode) {
        self.publish_counters();
        let acked = self.stats.acked_through.load(Ordering::Acquire);
        let Some(ck) = self.checkpoints.as_mut() else {
            return;
        };
        if let Some(stored) = ck.store_if_acked(acked).await {
            self.stats.metrics.checkpoints.inc();
            self.commit_stored(&stored, mode);
        }
    }

    fn commit_stored(&self, stored: &Stored, mode: CommitMode) {
        let offsets: Vec<(Arc<str>, i32, i64)> = self
            .partitions
            .iter()
            .filter(|(pid, _)| self.tracker.is_assigned(**pid))
            .filter_map(|(_, (topic, partition))| {
                stored
                    .offsets
                    .iter()
                    .find(|(t, p, _)| t == &**topic && p == partition)
                    .map(|(_, _, o)| (topic.clone(), *partition, *o))
            })
            .collect();
        if offsets.is_empty() {
            return;
        }
        self.commit(
            &CommitPlan {
                offsets,
                metadata: checkpoints::metadata(stored.epoch),
                watermark: stored.watermark,
            },
            mode,
        );
    }

    fn checkpoint_and_commit(&mut self, mode: CommitMode) {
        self.publish_counters();
        self.tracker.checkpoint(self.engine.watermark(), self.seq);
        let acked = self.stats.acked_through.load(Ordering::Acquire);
        if let Some(plan) = self.tracker.ready(acked) {
            self.commit(&plan, mode);
        }
    }

    fn commit(&self, plan: &CommitPlan, mode: CommitMode) {
        let mut tpl = TopicPartitionList::with_capacity(plan.offsets.len());
        for (topic, partition, offset) in &plan.offsets {
            let mut e = tpl.add_partition(topic, *partition);
            if e.set_offset(Offset::Offset(*offset)).is_err() {
                continue;
            }
            e.set_metadata(plan.metadata.as_str());
        }
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.metrics.commits.with_label_values(&["ok"]).inc();
                tracing::debug!(
                    partitions = plan.offsets.len(),
                    watermark = %fmt_time(plan.watermark),
                    "committed safe offsets"
                );
            }
            // Not fatal: the next commit covers the same offsets.
            Err(e) => {
                self.stats
                    .metrics
                    .commits
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(error = %e, "offset commit failed")
            }
        }
    }
}

/// Formats an event time for logs (`-` before the first watermark).
pub fn fmt_time(t: Micros) -> String {
    if t == Micros::MIN || t == Micros::MAX {
        "-".into()
    } else {
        format_rfc3339(t)
    }
}

/// Builds the horizon the commit logic needs from the config.
pub fn horizon(
    settings: &crate::engine::EngineSettings,
    kafka: &crate::config::KafkaSettings,
) -> Horizon {
    Horizon::new(settings, kafka.restart_entity_lookback)
}
