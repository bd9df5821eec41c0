/// What an experiment is and what it returns: rows that put our figure beside the paper's, the figures written, notes,
/// and the check its quick mode must pass (the test command runs every experiment quick, so none rots).
module Appendix.Experiment

/// How an experiment runs.
type Settings =
    { /// Small sizes, seconds instead of minutes: for the test command.
      Quick: bool
      /// The seed of every generator and of torch's global one.
      Seed: uint64
      /// The experiment's output folder (figures, results.md).
      Out: string
      /// A larger size where an experiment has one (`--size paper`: `images` on full 28 × 28 Fashion-MNIST with the
      /// paper's parameter counts); None: its default size.
      Size: string option
      /// Epochs, where an experiment takes them (`--epochs N`, `images --size paper`); None: its default.
      Epochs: int option
      /// Train on at most this many examples (`--train-limit N`, `images`), e.g. to time an epoch on a subset.
      TrainLimit: int option
      /// Test on at most this many examples (`--test-limit N`, `images`).
      TestLimit: int option }

/// One line of the results table: what is measured, ours, the paper's (or "—" where it reports none).
type Row = { Quantity: string; Ours: string; Paper: string }

/// What a run produced.
type Outcome =
    { Rows: Row list
      /// File names inside Settings.Out.
      Figures: string list
      /// What the settings were, where ours differs from the paper and why.
      Notes: string list
      /// The experiment's own check (e.g. "the data-controlled model fits φ(x) = −x to MSE < 0.01"), and whether it held.
      Check: string
      Passed: bool }

/// An experiment: its command name, title, what the paper shows, and the run.
type Experiment =
    { Name: string
      Title: string
      /// The paper's claim or number, in a sentence, with its section.
      Claim: string
      Run: Settings -> Outcome }

/// A row.
let row quantity ours paper = { Quantity = quantity; Ours = ours; Paper = paper }
