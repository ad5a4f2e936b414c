use crate::harness::TestEnv;
