using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using NeuralOde.Core;
using TorchSharp;
using CoreSensitivity = NeuralOde.Core.Sensitivity;

namespace NeuralOde;

/// <summary>
/// An event: a condition g(t, x) whose zero crossings (in <see cref="Direction"/>) are located on the solver's dense
/// output, and what happens there — the solve ends (<see cref="Terminal"/>), or goes on, with the state replaced by
/// <see cref="Update"/> when given (a bounce: v ← −e·v). Event times are differentiable.
/// </summary>
public sealed class OdeEvent
{
    /// <summary>An event.</summary>
    /// <param name="condition">g(t, x): t as a 0-dim tensor of the state's dtype, the state; returns a 0-dim tensor.
    /// It may use parameters (their gradients flow through the event time).</param>
    /// <param name="direction">Which crossings count.</param>
    /// <param name="terminal">End the solve at the event.</param>
    /// <param name="update">The state after the event from (t*, x*) (non-terminal events only); null: unchanged.</param>
    /// <param name="name">A name for reports and errors.</param>
    /// <exception cref="ArgumentException">A terminal event with an update.</exception>
    public OdeEvent(Func<torch.Tensor, torch.Tensor, torch.Tensor> condition, EventDirection direction = EventDirection.Either,
                    bool terminal = false, Func<torch.Tensor, torch.Tensor, torch.Tensor>? update = null, string? name = null)
    {
        Condition = condition ?? throw new ArgumentNullException(nameof(condition));
        if (terminal && update is not null)
            throw new ArgumentException("A terminal event ends the solve, so an update would never be used.", nameof(update));
        Direction = direction;
        Terminal = terminal;
        Update = update;
        Name = name ?? "event";
    }

    /// <summary>g(t, x).</summary>
    public Func<torch.Tensor, torch.Tensor, torch.Tensor> Condition { get; }

    /// <summary>Which crossings count.</summary>
    public EventDirection Direction { get; }

    /// <summary>True when the event ends the solve.</summary>
    public bool Terminal { get; }

    /// <summary>The state after the event, or null.</summary>
    public Func<torch.Tensor, torch.Tensor, torch.Tensor>? Update { get; }

    /// <summary>The event's name.</summary>
    public string Name { get; }

    internal Core.OdeEvent ToCore() =>
        new(FuncConvert.FromFunc(Condition), Direction, Terminal,
            Update is null ? FSharpOption<FSharpFunc<torch.Tensor, FSharpFunc<torch.Tensor, torch.Tensor>>>.None
                           : FSharpOption<FSharpFunc<torch.Tensor, FSharpFunc<torch.Tensor, torch.Tensor>>>.Some(FuncConvert.FromFunc(Update)),
            Name);
}

/// <summary>One event that happened.</summary>
/// <param name="Index">Which event (its index in the list given to the solve).</param>
/// <param name="Name">Its name.</param>
/// <param name="Time">t*, a 0-dim tensor, differentiable: the implicit-function-theorem gradient.</param>
/// <param name="State">x(t*) before any update, differentiable (including through t*).</param>
public sealed record EventOccurrence(int Index, string Name, torch.Tensor Time, torch.Tensor State);

/// <summary>The result of <see cref="Ode.SolveWithEvents"/>. Holds native memory: dispose it.</summary>
public sealed class EventSolution : IDisposable
{
    internal EventSolution(Core.EventSolution solution)
    {
        Times = solution.Times;
        States = solution.States;
        Events = solution.Events.Select(o => new EventOccurrence(o.Index, o.Name, o.Time, o.State)).ToList();
        Terminated = solution.Terminated;
        Final = solution.Final;
        Statistics = SolveStatistics.From(solution.Statistics);
    }

    /// <summary>The output times reached: all of them, unless a terminal event came first.</summary>
    public double[] Times { get; }

    /// <summary>The states at <see cref="Times"/>, stacked: [Times.Length, ...x0.shape].</summary>
    public torch.Tensor States { get; }

    /// <summary>The events in the order they happened.</summary>
    public IReadOnlyList<EventOccurrence> Events { get; }

    /// <summary>True when a terminal event ended the solve.</summary>
    public bool Terminated { get; }

    /// <summary>The state at the end: at the terminal event, or at the last output time.</summary>
    public torch.Tensor Final { get; }

    /// <summary>Function evaluations and steps of every pass (the locating passes and the differentiable ones).</summary>
    public SolveStatistics Statistics { get; }

    /// <summary>Frees the states and the events' tensors.</summary>
    public void Dispose()
    {
        States.Dispose();
        foreach (var e in Events) { e.Time.Dispose(); e.State.Dispose(); }
    }
}

public static partial class Ode
{
    /// <summary>
    /// Solves dx/dt = f(t, x) forward in time with events: each crossing of an event's condition is located on the
    /// solver's dense output (to <paramref name="tolerance"/> in time); a terminal event ends the solve, others go on
    /// (with their update applied). Event times and states are differentiable — the implicit-function-theorem
    /// gradient, as torchdiffeq's <c>odeint_event</c> — under autograd and the adjoints (each segment between events
    /// is solved with <paramref name="sensitivity"/>).
    /// </summary>
    /// <param name="vectorField">f(t, x).</param>
    /// <param name="x0">The initial state.</param>
    /// <param name="times">Increasing output times; the first is the start, the last the end (unless a terminal event
    /// comes first).</param>
    /// <param name="events">The events.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> with its defaults when null.</param>
    /// <param name="sensitivity">How gradients are computed; autograd when null.</param>
    /// <param name="parameters">The tensors f depends on, for adjoint sensitivities.</param>
    /// <param name="tolerance">Events are located to |Δt| ≤ tolerance · max(1, |t|).</param>
    /// <param name="maxEvents">The most events one solve may see (a ball bouncing to rest never ends otherwise).</param>
    /// <param name="stopAfterEvents">End the solve after this many events (the last one's update applied), e.g. "the
    /// first five bounces"; <see cref="EventSolution.Terminated"/> is then true.</param>
    /// <exception cref="ArgumentException">Decreasing times, an event condition that does not return one number, an
    /// update of the wrong shape; the message names it.</exception>
    /// <exception cref="OdeSolveException">A solve failed, more than <paramref name="maxEvents"/> events, or a
    /// tangential crossing (no gradient); the time is given.</exception>
    public static EventSolution SolveWithEvents(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0,
                                                double[] times, IEnumerable<OdeEvent> events, Solver? solver = null,
                                                StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                                IEnumerable<torch.Tensor>? parameters = null, double tolerance = 1e-12,
                                                int maxEvents = 10_000, int? stopAfterEvents = null)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (parameters is null && sensitivity is not null && sensitivity.Value.Tag != CoreSensitivity.Tags.Autograd)
            throw new ArgumentNullException(nameof(parameters),
                "An adjoint sensitivity computes gradients only for the tensors in `parameters`: pass the field's tensors, or an empty list when only dL/dx0 is wanted.");
        var problem = ProblemOf(vectorField, x0, times);
        if (parameters is not null) problem = OdeProblemModule.withParameters(parameters, problem);
        var (method, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        var how = (sensitivity ?? Sensitivities.Autograd()).Value;
        var options = new Events.EventOptions(tolerance, maxEvents,
            stopAfterEvents is int n ? FSharpOption<int>.Some(n) : FSharpOption<int>.None);
        var list = ListModule.OfSeq(events.Select(e => (e ?? throw new ArgumentNullException(nameof(events), "An event is null.")).ToCore()));
        return new EventSolution(Events.solveWithOptions(options, how, list, problem, method, control));
    }
}
