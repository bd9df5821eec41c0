/// Runs an action that must throw 'E and returns the exception for checks on its message.
module NeuralOde.Tests.Support.Raises

open Expecto

let raises<'E when 'E :> exn> (action: unit -> unit) : 'E =
    let caught =
        try
            action ()
            None
        with
        | :? 'E as e -> Some e
        | e -> failtestf "expected %s but got %s: %s" typeof<'E>.Name (e.GetType().Name) e.Message
    match caught with
    | Some e -> e
    | None -> failtestf "expected %s but nothing was thrown" typeof<'E>.Name
