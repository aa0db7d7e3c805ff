//! Groups, metric filters, topics and alarms: their settings, kept in `logs.json`.

use super::*;

impl Logs {
    /// Creates (or updates the trail and retention of) a log group.
    pub fn put_group(&self, group: LogGroup) -> Result<LogGroup, LogsError> {
        let valid_name = (1..=512).contains(&group.name.len())
            && group
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c));
        if !valid_name {
            return Err(LogsError::Invalid(format!(
                "log group name {:?} must be 1-512 of letters, digits and _-/.#",
                group.name
            )));
        }
        if !RETENTION_DAYS.contains(&group.retention_days) {
            return Err(LogsError::Invalid(format!(
                "RetentionInDays must be one of {RETENTION_DAYS:?}"
            )));
        }
        let _guard = self.write.lock().expect("logs lock poisoned");
        let mut config = self.config.read().expect("logs lock poisoned").clone();
        match config.groups.iter_mut().find(|g| g.name == group.name) {
            Some(existing) => {
                existing.trail = group.trail.clone();
                existing.retention_days = group.retention_days;
            }
            None => config.groups.push(group.clone()),
        }
        self.save(&config)?;
        let stored = config
            .groups
            .iter()
            .find(|g| g.name == group.name)
            .cloned()
            .expect("just stored");
        *self.config.write().expect("logs lock poisoned") = config;
        Ok(stored)
    }

    /// The groups.
    pub fn groups(&self) -> Vec<LogGroup> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .groups
            .clone()
    }

    /// Adds or replaces a metric filter (at most 100 per group).
    pub fn put_filter(&self, filter: FilterConfig) -> Result<(), LogsError> {
        compile(&filter)?;
        let _guard = self.write.lock().expect("logs lock poisoned");
        let mut config = self.config.read().expect("logs lock poisoned").clone();
        if !config.groups.iter().any(|g| g.name == filter.group) {
            return Err(LogsError::NotFound(filter.group.clone()));
        }
        config
            .filters
            .retain(|f| !(f.group == filter.group && f.name == filter.name));
        if config
            .filters
            .iter()
            .filter(|f| f.group == filter.group)
            .count()
            >= 100
        {
            return Err(LogsError::Limit(
                "at most 100 metric filters per log group".into(),
            ));
        }
        config.filters.push(filter);
        self.save(&config)?;
        *self.config.write().expect("logs lock poisoned") = config;
        self.recompile()
    }

    /// The metric filters of a group (all groups with `None`).
    pub fn filters(&self, group: Option<&str>) -> Vec<FilterConfig> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .filters
            .iter()
            .filter(|f| group.is_none_or(|g| g == f.group))
            .cloned()
            .collect()
    }

    /// Creates or replaces a topic.
    pub fn put_topic(&self, topic: Topic) -> Result<Topic, LogsError> {
        let valid = (1..=256).contains(&topic.name.len())
            && topic
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(LogsError::Invalid(
                "topic names are 1-256 letters, digits, - and _".into(),
            ));
        }
        for s in &topic.subscriptions {
            match s.protocol.as_str() {
                "http" | "https"
                    if s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://") => {}
                "http" | "https" => {
                    return Err(LogsError::Invalid(format!(
                        "an http(s) subscription needs an http:// or https:// endpoint, got {:?}",
                        s.endpoint
                    )))
                }
                "file" if Path::new(&s.endpoint).is_absolute() => {}
                "file" => {
                    return Err(LogsError::Invalid(
                        "a file subscription needs an absolute path".into(),
                    ))
                }
                other => {
                    return Err(LogsError::Invalid(format!(
                        "protocol {other:?} is not supported (http, https, file)"
                    )))
                }
            }
        }
        self.modify(|config| {
            config.topics.retain(|t| t.name != topic.name);
            config.topics.push(topic.clone());
            Ok(topic.clone())
        })
    }

    /// The topics.
    pub fn topics(&self) -> Vec<Topic> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .topics
            .clone()
    }

    /// Creates or replaces an alarm (its state starts as INSUFFICIENT_DATA).
    pub fn put_alarm(&self, mut alarm: AlarmConfig) -> Result<AlarmConfig, LogsError> {
        alarm.spec.validate().map_err(|e| LogsError::Invalid(e.0))?;
        if alarm.name.is_empty() || alarm.name.len() > 255 {
            return Err(LogsError::Invalid(
                "alarm names are 1-255 characters".into(),
            ));
        }
        self.modify(|config| {
            for action in &alarm.actions {
                if !config.topics.iter().any(|t| t.name == *action) {
                    return Err(LogsError::NotFound(format!("topic {action}")));
                }
            }
            alarm.state = cairn_monitor::alarm::State::InsufficientData;
            alarm.reason = "Unchecked: initial alarm creation".into();
            alarm.history.clear();
            config.alarms.retain(|a| a.name != alarm.name);
            config.alarms.push(alarm.clone());
            Ok(alarm.clone())
        })
    }

    /// The alarms.
    pub fn alarms(&self) -> Vec<AlarmConfig> {
        self.config
            .read()
            .expect("logs lock poisoned")
            .alarms
            .clone()
    }

    /// DeleteMetricFilter: the filter stops counting from the next event on.
    pub fn delete_filter(&self, group: &str, name: &str) -> Result<(), LogsError> {
        self.modify(|config| {
            let before = config.filters.len();
            config
                .filters
                .retain(|f| !(f.group == group && f.name == name));
            if config.filters.len() == before {
                return Err(LogsError::NotFound(format!(
                    "metric filter {name} of log group {group}"
                )));
            }
            Ok(())
        })?;
        self.recompile()
    }

    /// DeleteLogGroup: the group, its metric filters and its events (metrics already
    /// produced stay, as CloudWatch keeps them).
    pub fn delete_group(&self, name: &str) -> Result<(), LogsError> {
        self.modify(|config| {
            if !config.groups.iter().any(|g| g.name == name) {
                return Err(LogsError::NotFound(name.to_owned()));
            }
            config.groups.retain(|g| g.name != name);
            config.filters.retain(|f| f.group != name);
            Ok(())
        })?;
        self.recompile()?;
        let txn = self.db.begin_write().map_err(|e| self.db_error(e))?;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
            self.remove_events(&mut events, name, i64::MAX)?;
        }
        txn.commit().map_err(|e| self.db_error(e))
    }

    /// Removes the events of `group` with times before `until`; returns how many.
    pub(crate) fn remove_events(
        &self,
        events: &mut redb::Table<'_, (&str, i64, u64), &[u8]>,
        group: &str,
        until: i64,
    ) -> Result<usize, LogsError> {
        let keys: Vec<(i64, u64)> = events
            .range((group, i64::MIN, 0)..(group, until, 0))
            .map_err(|e| self.db_error(e))?
            .filter_map(Result::ok)
            .map(|(k, _)| {
                let (_, t, s) = k.value();
                (t, s)
            })
            .collect();
        for &(t, s) in &keys {
            events.remove((group, t, s)).map_err(|e| self.db_error(e))?;
        }
        Ok(keys.len())
    }

    /// DeleteAlarms: every named alarm, or none when one does not exist.
    pub fn delete_alarms(&self, names: &[String]) -> Result<(), LogsError> {
        self.modify(|config| {
            if let Some(missing) = names
                .iter()
                .find(|n| !config.alarms.iter().any(|a| a.name == **n))
            {
                return Err(LogsError::NotFound(format!("alarm {missing}")));
            }
            config.alarms.retain(|a| !names.contains(&a.name));
            Ok(())
        })
    }

    /// DeleteTopic: refused while an alarm notifies it (delete or change the alarm first), so
    /// that no alarm is left notifying nobody without saying so.
    pub fn delete_topic(&self, name: &str) -> Result<(), LogsError> {
        self.modify(|config| {
            if !config.topics.iter().any(|t| t.name == name) {
                return Err(LogsError::NotFound(format!("topic {name}")));
            }
            if let Some(alarm) = config
                .alarms
                .iter()
                .find(|a| a.actions.iter().any(|t| t == name))
            {
                return Err(LogsError::Invalid(format!(
                    "topic {name} is an action of alarm {}; delete the alarm or change its actions first",
                    alarm.name
                )));
            }
            config.topics.retain(|t| t.name != name);
            Ok(())
        })
    }

    pub(crate) fn modify<T>(
        &self,
        f: impl FnOnce(&mut Config) -> Result<T, LogsError>,
    ) -> Result<T, LogsError> {
        let _guard = self.write.lock().expect("logs lock poisoned");
        let mut config = self.config.read().expect("logs lock poisoned").clone();
        let out = f(&mut config)?;
        self.save(&config)?;
        *self.config.write().expect("logs lock poisoned") = config;
        Ok(out)
    }
}
