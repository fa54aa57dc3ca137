//! The lifecycle model: the file where a team writes down what its stages and statuses mean
//! and how they move. This crate parses it, checks it, and compiles it into a [`Model`] the
//! engine can run. It does no I/O beyond what its caller hands it.
//!
//! (Foundation version: stages and statuses only; the checker and rules come next.)

use serde::Deserialize;

/// Index of a stage in [`Model::stages`].
pub type StageId = u16;
/// Index of a status in [`Model::statuses`].
pub type StatusId = u16;

/// The shipped default model: the demand waterfall with scoring and automation.
pub const DEMAND_WATERFALL_TOML: &str = include_str!("../../../models/demand-waterfall.toml");
/// The shipped model without automation, for honest reports over imported history.
pub const HISTORY_ONLY_TOML: &str = include_str!("../../../models/history-only.toml");

/// Who owns a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// Marketing works people in this stage.
    Marketing,
    /// Sales works people in this stage.
    Sales,
}

/// What kind of stage it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// A stage on the main path.
    Active,
    /// A stage where people are recycled to (MRL, SRL).
    Recycle,
    /// A stage with no way out unless a rule reopens it.
    Terminal,
}

/// One lifecycle stage.
#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    /// Its name (`MQL`).
    pub name: String,
    /// What it means, for humans.
    #[serde(default)]
    pub definition: String,
    /// Who works people in it.
    pub owner: Option<Owner>,
    /// Active, recycle or terminal.
    pub kind: StageKind,
}

/// One lead status.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// Its name (`Working`).
    pub name: String,
    /// What it means, for humans.
    #[serde(default)]
    pub definition: String,
}

#[derive(Deserialize)]
struct RawModel {
    model: RawHeader,
    #[serde(default)]
    stage: Vec<Stage>,
    #[serde(default)]
    status: Vec<Status>,
}

#[derive(Deserialize)]
struct RawHeader {
    name: String,
    initial_stage: String,
    initial_status: Option<String>,
}

/// A checked, compiled lifecycle model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The model's name.
    pub name: String,
    /// The stages, indexed by [`StageId`].
    pub stages: Vec<Stage>,
    /// The stage a new person enters.
    pub initial_stage: StageId,
    /// The statuses, indexed by [`StatusId`].
    pub statuses: Vec<Status>,
    /// The status a new person gets, if any.
    pub initial_status: Option<StatusId>,
    /// The model file's text, as loaded (kept so a database remembers its model).
    pub source: String,
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

impl Model {
    /// Parses and checks a model from its TOML text.
    pub fn from_toml(text: &str) -> Result<Model, ModelError> {
        let raw: RawModel = toml::from_str(text).map_err(|e| ModelError(e.to_string()))?;
        let find = |name: &str| raw.stage.iter().position(|s| s.name == name);
        let initial_stage = find(&raw.model.initial_stage).ok_or_else(|| {
            ModelError(format!(
                "unknown initial stage {:?}",
                raw.model.initial_stage
            ))
        })? as StageId;
        let initial_status = match &raw.model.initial_status {
            None => None,
            Some(s) => Some(
                raw.status
                    .iter()
                    .position(|x| &x.name == s)
                    .ok_or_else(|| ModelError(format!("unknown initial status {s:?}")))?
                    as StatusId,
            ),
        };
        Ok(Model {
            name: raw.model.name,
            stages: raw.stage,
            initial_stage,
            statuses: raw.status,
            initial_status,
            source: text.to_string(),
        })
    }

    /// The shipped default model (`models/demand-waterfall.toml`).
    pub fn demand_waterfall() -> Model {
        Model::from_toml(DEMAND_WATERFALL_TOML).expect("the shipped default model is valid")
    }

    /// The shipped history-only model (`models/history-only.toml`).
    pub fn history_only() -> Model {
        Model::from_toml(HISTORY_ONLY_TOML).expect("the shipped history-only model is valid")
    }

    /// The id of the stage with this name.
    pub fn stage_id(&self, name: &str) -> Option<StageId> {
        self.stages
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as StageId)
    }

    /// The id of the status with this name.
    pub fn status_id(&self, name: &str) -> Option<StatusId> {
        self.statuses
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as StatusId)
    }
}
