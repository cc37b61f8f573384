-- An SQLite database written by recipe-opt at commit 35ae666, before the lineage store had
-- migrations: an Optuna study plus the four lineage_* tables made by create_all, with one row
-- each. tests/test_migrations.py upgrades it to head and checks that nothing is lost.
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('v3.2.0.a');
CREATE TABLE lineage_model_versions (
	id INTEGER NOT NULL, 
	family VARCHAR(200) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	parent_id INTEGER, 
	tier VARCHAR(32) NOT NULL, 
	weights_uri TEXT NOT NULL, 
	weights_checksum VARCHAR(64), 
	status VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_lineage_version_family_name UNIQUE (family, name), 
	FOREIGN KEY(parent_id) REFERENCES lineage_model_versions (id)
);
INSERT INTO "lineage_model_versions" VALUES(1,'demo','v0',NULL,'foundation','/models/v0','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','current','2026-11-23 13:01:08.042445');
CREATE TABLE lineage_recipes (
	id INTEGER NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	body JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (content_hash)
);
INSERT INTO "lineage_recipes" VALUES(1,'8f8c894f8fde83aaefa5a63ce4d3cc87ca1da6e32a0636222d31dd32dc9871a4','{"mixture": {"weights": {"mul": 0.5, "add_text": 0.5}}, "replay": {"ratio": 0.3}, "schedule": {"peak_lr": 0.0035, "warmup_fraction": 0.05, "shape": "cosine", "weight_decay": 0.0}, "adapter": {"rank": 16, "alpha_ratio": 2.0, "target_modules": ["q_proj", "v_proj"], "dropout": 0.0}, "budget": {"steps": 550, "batch_size": 32}, "seed": 0, "format_version": 1, "content_hash": "8f8c894f8fde83aaefa5a63ce4d3cc87ca1da6e32a0636222d31dd32dc9871a4", "stamp": {}}','2026-11-23 13:01:08.054542');
CREATE TABLE lineage_selections (
	id INTEGER NOT NULL, 
	cycle_id INTEGER NOT NULL, 
	recipe_id INTEGER NOT NULL, 
	trial_number INTEGER NOT NULL, 
	policy VARCHAR(64) NOT NULL, 
	rule TEXT NOT NULL, 
	reason TEXT NOT NULL, 
	gain FLOAT NOT NULL, 
	forgetting FLOAT, 
	cost FLOAT, 
	metrics JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(cycle_id) REFERENCES lineage_update_cycles (id), 
	FOREIGN KEY(recipe_id) REFERENCES lineage_recipes (id)
);
INSERT INTO "lineage_selections" VALUES(1,1,1,11,'gain-within-gates','highest gain','legacy row',0.62,0.02,0.286,'{"gain": 0.62}','2026-11-23 13:01:08.059877');
CREATE TABLE lineage_update_cycles (
	id INTEGER NOT NULL, 
	study_name VARCHAR(200) NOT NULL, 
	optuna_study_id INTEGER, 
	base_version_id INTEGER NOT NULL, 
	objectives JSON NOT NULL, 
	data_manifest JSON NOT NULL, 
	search_space JSON NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	n_complete INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (study_name), 
	FOREIGN KEY(base_version_id) REFERENCES lineage_model_versions (id)
);
INSERT INTO "lineage_update_cycles" VALUES(1,'legacy-cycle-1',1,1,'{"gain": "maximize", "forgetting": "minimize", "cost": "minimize"}','{"new/mul": {"path": "/d/mul.jsonl", "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}}','{"replay_ratio": {"type": "float", "low": 0.0, "high": 0.5}}','2026-11-23 13:01:08.048620','2026-11-23 13:01:08.057029',24);
CREATE TABLE studies (
	study_id INTEGER NOT NULL, 
	study_name VARCHAR(512) NOT NULL, 
	PRIMARY KEY (study_id)
);
INSERT INTO "studies" VALUES(1,'legacy-cycle-1');
CREATE TABLE study_directions (
	study_direction_id INTEGER NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	study_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	PRIMARY KEY (study_direction_id), 
	UNIQUE (study_id, objective), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "study_directions" VALUES(1,'MAXIMIZE',1,0);
INSERT INTO "study_directions" VALUES(2,'MINIMIZE',1,1);
INSERT INTO "study_directions" VALUES(3,'MINIMIZE',1,2);
CREATE TABLE study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_system_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_user_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	heartbeat DATETIME NOT NULL, 
	PRIMARY KEY (trial_heartbeat_id), 
	UNIQUE (trial_id), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	intermediate_value FLOAT, 
	intermediate_value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_intermediate_value_id), 
	UNIQUE (trial_id, step), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_params (
	param_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	param_name VARCHAR(512), 
	param_value FLOAT, 
	distribution_json TEXT, 
	PRIMARY KEY (param_id), 
	UNIQUE (trial_id, param_name), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_system_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_user_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_values (
	trial_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	value FLOAT, 
	value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_value_id), 
	UNIQUE (trial_id, objective), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trials (
	trial_id INTEGER NOT NULL, 
	number INTEGER, 
	study_id INTEGER, 
	state VARCHAR(8) NOT NULL, 
	datetime_start DATETIME, 
	datetime_complete DATETIME, 
	PRIMARY KEY (trial_id), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE version_info (
	version_info_id INTEGER NOT NULL, 
	schema_version INTEGER, 
	library_version VARCHAR(256), 
	PRIMARY KEY (version_info_id), 
	CHECK (version_info_id=1)
);
INSERT INTO "version_info" VALUES(1,12,'5.0.0');
CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name);
CREATE INDEX ix_trials_study_id ON trials (study_id);
CREATE INDEX ix_lineage_model_versions_family ON lineage_model_versions (family);
CREATE INDEX ix_lineage_selections_cycle_id ON lineage_selections (cycle_id);
COMMIT;