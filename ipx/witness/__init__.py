"""Acting as a C2SP witness (https://c2sp.org/tlog-witness): cosigning other logs' checkpoints that extend the last
one seen, so a log cannot show different histories to different people without a witness noticing."""
