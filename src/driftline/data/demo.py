"""Seeded demo data: customer churn in time-ordered batches (stable, covariate shift, concept drift, faults)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank-transfer", "e-check", "mailed-check"]
REGIONS = ["north", "south", "east", "west"]
START = pd.Timestamp("2026-01-05", tz="UTC")


@dataclass(frozen=True)
class Scenario:
    """How one batch departs from the reference world."""

    charges_shift: float = 0.0  # covariate shift: prices go up
    tenure_scale: float = 1.0  # covariate shift: many new customers
    month_to_month_share: float = 0.5
    echeck_share: float = 0.25
    concept_drift: bool = False  # the relation between features and churn changes


STABLE = Scenario()
COVARIATE_SHIFT = Scenario(charges_shift=18.0, tenure_scale=0.55, month_to_month_share=0.62)
CONCEPT_DRIFT = Scenario(charges_shift=6.0, echeck_share=0.4, concept_drift=True)


def make_frame(
    rows: int, seed: int, start: pd.Timestamp = START, days: int = 7, scenario: Scenario = STABLE, id_offset: int = 0
) -> pd.DataFrame:
    """One batch of customers with their churn label; the same seed gives the same rows."""
    rng = np.random.default_rng(seed)
    other = (1 - scenario.month_to_month_share) / 2
    contract = rng.choice(CONTRACTS, rows, p=[scenario.month_to_month_share, other, other])
    other_pay = (1 - scenario.echeck_share) / 3
    payment = rng.choice(PAYMENTS, rows, p=[other_pay, other_pay, scenario.echeck_share, other_pay])
    region = rng.choice(REGIONS, rows, p=[0.3, 0.25, 0.25, 0.2])
    tenure = np.clip(rng.exponential(24 * scenario.tenure_scale, rows), 1, 72).round()
    charges = np.clip(rng.normal(70 + scenario.charges_shift, 20, rows), 18, 160).round(2)
    support_calls = rng.poisson(1.5, rows).astype(float)
    age = np.clip(rng.normal(44, 14, rows), 18, 90).round()
    month_to_month = contract == "month-to-month"
    if scenario.concept_drift:
        # A competitor undercuts prices: price and e-check payers now drive churn; long tenure protects less.
        logit = (
            -0.6
            + 0.3 * month_to_month
            - 0.4 * (contract == "two-year")
            - 0.01 * (tenure - 24)
            + 0.07 * (charges - 70)
            + 0.05 * support_calls
            + 1.6 * (payment == "e-check")
            + 0.6 * (region == "south")
        )
    else:
        logit = (
            -1.2
            + 1.1 * month_to_month
            - 1.0 * (contract == "two-year")
            - 0.045 * (tenure - 24)
            + 0.015 * (charges - 70)
            + 0.45 * support_calls
            + 0.35 * (payment == "e-check")
        )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    seconds = np.sort(rng.uniform(0, days * 86400, rows))
    return pd.DataFrame(
        {
            "customer_id": [f"C{id_offset + i:07d}" for i in range(rows)],
            "event_time": start + pd.to_timedelta(seconds, unit="s"),
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": support_calls,
            "age": age,
            "contract": contract,
            "payment_method": payment,
            "region": region,
            "churned": churned,
        }
    )


def inject_quality_faults(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """What a broken upstream export looks like: nulls, impossible ages, an unknown plan, repeated ids."""
    rng = np.random.default_rng(seed)
    faulty = frame.copy()
    rows = len(faulty)
    faulty.loc[rng.random(rows) < 0.3, "monthly_charges"] = np.nan
    bad_age = rng.random(rows) < 0.05
    faulty.loc[bad_age, "age"] = rng.choice([-1.0, 230.0, 999.0], bad_age.sum())
    faulty.loc[rng.random(rows) < 0.1, "contract"] = "unknown-plan"
    faulty.loc[faulty.index[-20:], "customer_id"] = faulty["customer_id"].iloc[:20].to_numpy()
    return faulty


@dataclass(frozen=True)
class DemoFiles:
    reference: Path
    batches: list[Path]  # in arrival order


def write_demo_data(folder: Path, seed: int = 7) -> DemoFiles:
    """The demo's files: eight weeks of training data (Parquet), then five weekly batches (CSV)."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = make_frame(6000, seed, START, days=56)
    reference_path = folder / "reference.parquet"
    reference.to_parquet(reference_path, index=False)
    week = pd.Timedelta(days=7)
    plan = [
        ("batch_01_stable.csv", 2000, STABLE),
        ("batch_02_stable.csv", 2000, STABLE),
        ("batch_03_covariate_shift.csv", 2000, COVARIATE_SHIFT),
        ("batch_04_concept_drift.csv", 4000, CONCEPT_DRIFT),
        ("batch_05_quality_faults.csv", 1500, STABLE),
    ]
    paths, offset = [], len(reference)
    for number, (name, rows, scenario) in enumerate(plan, start=1):
        frame = make_frame(rows, seed + number, START + (7 + number) * week, scenario=scenario, id_offset=offset)
        if "faults" in name:
            frame = inject_quality_faults(frame, seed + number)
        offset += rows
        path = folder / name
        frame.to_csv(path, index=False)
        paths.append(path)
    return DemoFiles(reference=reference_path, batches=paths)


# The fleet demo's other two tasks, each with a known signal: which plan a customer picks (multiclass) and how many
# units a store sells in a day (regression). `shift` moves the features (covariate shift); `concept_drift` changes
# how they relate to the target.
PLANS = ["basic", "standard", "premium"]
DEVICES = ["phone", "tablet", "tv", "laptop"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def make_plan_frame(
    rows: int,
    seed: int,
    start: pd.Timestamp = START,
    days: int = 7,
    shift: float = 0.0,
    concept_drift: bool = False,
    id_offset: int = 0,
) -> pd.DataFrame:
    """Customers and the plan they chose (basic, standard, premium) from usage, household and device."""
    rng = np.random.default_rng(seed)
    usage_gb = np.clip(rng.gamma(2.0, 12.0 * (1 + shift), rows), 0.5, 400).round(1)
    household = rng.integers(1, 6, rows).astype(float)
    streaming_hours = np.clip(rng.normal(14 * (1 + shift), 7, rows), 0, 80).round(1)
    age = np.clip(rng.normal(41, 13, rows), 18, 90).round()
    device = rng.choice(DEVICES, rows, p=[0.4, 0.2, 0.25, 0.15])
    region = rng.choice(REGIONS, rows, p=[0.3, 0.25, 0.25, 0.2])
    standard = -10 + 0.24 * usage_gb + 1.5 * household + 0.15 * streaming_hours
    premium = -24 + 0.42 * usage_gb + 2.7 * household + 0.45 * streaming_hours + 6.0 * (device == "tv")
    if concept_drift:  # a cheaper premium plan: the young and the laptop users move up, usage matters less
        premium = -12 + 0.18 * usage_gb + 1.2 * household - 0.24 * (age - 41) + 7.5 * (device == "laptop")
    scores = np.column_stack([np.zeros(rows), standard, premium])
    chances = np.exp(scores - scores.max(axis=1, keepdims=True))
    chances /= chances.sum(axis=1, keepdims=True)
    chosen = (rng.random(rows)[:, None] > chances.cumsum(axis=1)).sum(axis=1).clip(0, 2)
    seconds = np.sort(rng.uniform(0, days * 86400, rows))
    return pd.DataFrame(
        {
            "customer_id": [f"P{id_offset + i:07d}" for i in range(rows)],
            "event_time": start + pd.to_timedelta(seconds, unit="s"),
            "usage_gb": usage_gb,
            "household_size": household,
            "streaming_hours": streaming_hours,
            "age": age,
            "device": device,
            "region": region,
            "plan": np.array(PLANS)[chosen],
        }
    )


def make_demand_frame(
    rows: int,
    seed: int,
    start: pd.Timestamp = START,
    days: int = 7,
    shift: float = 0.0,
    concept_drift: bool = False,
    id_offset: int = 0,
) -> pd.DataFrame:
    """Store days and the units sold, from price, discount, temperature, weekday and store size."""
    rng = np.random.default_rng(seed)
    price = np.clip(rng.normal(20 * (1 + shift), 4, rows), 5, 60).round(2)
    discount = rng.choice([0.0, 0.1, 0.2, 0.3], rows, p=[0.55, 0.2, 0.15, 0.1])
    temperature = np.clip(rng.normal(16 + 10 * shift, 8, rows), -15, 42).round(1)
    store_size = rng.choice([1.0, 2.0, 3.0], rows, p=[0.5, 0.3, 0.2])
    weekday = rng.choice(WEEKDAYS, rows)
    region = rng.choice(REGIONS, rows, p=[0.3, 0.25, 0.25, 0.2])
    weekend = np.isin(weekday, ["sat", "sun"])
    units = 120 - 3.0 * (price - 20) + 150 * discount + 1.5 * (temperature - 16) + 25 * weekend
    if concept_drift:  # shoppers turn price-sensitive and stop coming at weekends
        units = 120 - 7.0 * (price - 20) + 260 * discount + 1.5 * (temperature - 16) - 10 * weekend
    units = np.clip(units * (0.6 + 0.4 * store_size) + rng.normal(0, 12, rows), 0, None).round()
    seconds = np.sort(rng.uniform(0, days * 86400, rows))
    return pd.DataFrame(
        {
            "store_day_id": [f"S{id_offset + i:07d}" for i in range(rows)],
            "event_time": start + pd.to_timedelta(seconds, unit="s"),
            "price": price,
            "discount": discount,
            "temperature": temperature,
            "store_size": store_size,
            "weekday": weekday,
            "region": region,
            "units_sold": units,
        }
    )


TASK_FRAMES = {"multiclass": make_plan_frame, "regression": make_demand_frame}


def write_task_data(folder: Path, task: str, seed: int = 7) -> DemoFiles:
    """A demo model's files for its task: the churn demo's for binary (`write_demo_data`); for multiclass (plans)
    and regression (demand), eight weeks of training data (Parquet) and four weekly batches (CSV): two stable, a
    covariate shift, a concept drift."""
    if task == "binary":
        return write_demo_data(folder, seed)
    make = TASK_FRAMES[task]
    folder.mkdir(parents=True, exist_ok=True)
    reference_path = folder / "reference.parquet"
    make(6000, seed, START, days=56).to_parquet(reference_path, index=False)
    week = pd.Timedelta(days=7)
    plan = [
        ("batch_01_stable.csv", {}),
        ("batch_02_stable.csv", {}),
        ("batch_03_covariate_shift.csv", {"shift": 0.4}),
        ("batch_04_concept_drift.csv", {"concept_drift": True}),
    ]
    paths = []
    for number, (name, scenario) in enumerate(plan, start=1):
        frame = make(2000, seed + number, START + (7 + number) * week, id_offset=6000 + 2000 * number, **scenario)
        frame.to_csv(folder / name, index=False)
        paths.append(folder / name)
    return DemoFiles(reference=reference_path, batches=paths)
