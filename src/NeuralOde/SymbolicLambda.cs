using System;
using System.Collections.Generic;
using System.Linq;
using System.Linq.Expressions;
using System.Reflection;
using TorchSharp;
using CoreExpr = NeuralOde.Core.Symbolic.Expr;
using CoreSymbolic = NeuralOde.Core.Symbolic;
using TorchTensor = TorchSharp.torch.Tensor;

namespace NeuralOde;

// The C# front end: a field written as an ordinary lambda (over TorchSharp tensors or over symbolic expressions)
// becomes a symbolic expression.
public static partial class Symbolic
{
    /// <summary>
    /// The expression of a lambda over TorchSharp tensors, e.g.
    /// <c>Symbolic.FromLambda((Tensor z, Tensor w, Tensor b) =&gt; tanh(z.matmul(w) + b), scalars: new[] { "b" })</c>:
    /// the lambda's parameters become variables of the same names (those named in <paramref name="scalars"/> 0-dim
    /// scalars, the others tensors), and its body — code that also runs on tensors — is translated. Supported:
    /// + − * / and unary minus (numbers, captured numeric locals and <see cref="TorchSharp.Scalar"/>s become constants),
    /// tanh, sigmoid, softplus, sin, cos, exp, log, neg, pow with a constant exponent, square, sqrt, matmul, mm, t(),
    /// T, mT, sum() and sum(dim), and torch.cat of an array or list written out in the lambda.
    /// </summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentNullException"><paramref name="lambda"/> is null.</exception>
    /// <exception cref="ArgumentException">The body uses a construct that is not translated (named in the message), a
    /// captured tensor, or <paramref name="scalars"/> names something that is not a parameter.</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<TorchTensor, TorchTensor>> lambda,
                                                IEnumerable<string>? scalars = null) => LambdaTranslator.Translate(lambda, scalars);

    /// <summary>The expression of a lambda over two TorchSharp tensors (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException">The body uses a construct that is not translated (named in the message).</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<TorchTensor, TorchTensor, TorchTensor>> lambda,
                                                IEnumerable<string>? scalars = null) => LambdaTranslator.Translate(lambda, scalars);

    /// <summary>The expression of a lambda over three TorchSharp tensors (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException">The body uses a construct that is not translated (named in the message).</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<TorchTensor, TorchTensor, TorchTensor, TorchTensor>> lambda,
                                                IEnumerable<string>? scalars = null) => LambdaTranslator.Translate(lambda, scalars);

    /// <summary>The expression of a lambda over four TorchSharp tensors (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException">The body uses a construct that is not translated (named in the message).</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<TorchTensor, TorchTensor, TorchTensor, TorchTensor, TorchTensor>> lambda,
                                                IEnumerable<string>? scalars = null) => LambdaTranslator.Translate(lambda, scalars);

    /// <summary>The expression of a lambda over five TorchSharp tensors (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException">The body uses a construct that is not translated (named in the message).</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<TorchTensor, TorchTensor, TorchTensor, TorchTensor, TorchTensor, TorchTensor>> lambda,
                                                IEnumerable<string>? scalars = null) => LambdaTranslator.Translate(lambda, scalars);

    /// <summary>
    /// The expression of a lambda over symbolic expressions, e.g.
    /// <c>Symbolic.FromLambda((SymbolicExpression z) =&gt; Symbolic.Sin(z) * 0.5)</c>: the lambda is called with one
    /// variable per parameter, named after it (those in <paramref name="scalars"/> scalars, the others tensors).
    /// </summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentNullException"><paramref name="lambda"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="scalars"/> names something that is not a parameter, or the lambda returns null.</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<SymbolicExpression, SymbolicExpression>> lambda,
                                                IEnumerable<string>? scalars = null)
    {
        var v = LambdaTranslator.Variables(lambda, scalars);
        return LambdaTranslator.Returned(lambda.Compile()(v[0]));
    }

    /// <summary>The expression of a lambda over two symbolic expressions (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException"><paramref name="scalars"/> names something that is not a parameter, or the lambda returns null.</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<SymbolicExpression, SymbolicExpression, SymbolicExpression>> lambda,
                                                IEnumerable<string>? scalars = null)
    {
        var v = LambdaTranslator.Variables(lambda, scalars);
        return LambdaTranslator.Returned(lambda.Compile()(v[0], v[1]));
    }

    /// <summary>The expression of a lambda over three symbolic expressions (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException"><paramref name="scalars"/> names something that is not a parameter, or the lambda returns null.</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<SymbolicExpression, SymbolicExpression, SymbolicExpression, SymbolicExpression>> lambda,
                                                IEnumerable<string>? scalars = null)
    {
        var v = LambdaTranslator.Variables(lambda, scalars);
        return LambdaTranslator.Returned(lambda.Compile()(v[0], v[1], v[2]));
    }

    /// <summary>The expression of a lambda over four symbolic expressions (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException"><paramref name="scalars"/> names something that is not a parameter, or the lambda returns null.</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<SymbolicExpression, SymbolicExpression, SymbolicExpression, SymbolicExpression, SymbolicExpression>> lambda,
                                                IEnumerable<string>? scalars = null)
    {
        var v = LambdaTranslator.Variables(lambda, scalars);
        return LambdaTranslator.Returned(lambda.Compile()(v[0], v[1], v[2], v[3]));
    }

    /// <summary>The expression of a lambda over five symbolic expressions (see the one-parameter overload).</summary>
    /// <param name="lambda">The field, with one parameter per variable.</param>
    /// <param name="scalars">The names of the parameters that are 0-dim scalars (none by default).</param>
    /// <exception cref="ArgumentException"><paramref name="scalars"/> names something that is not a parameter, or the lambda returns null.</exception>
    public static SymbolicExpression FromLambda(System.Linq.Expressions.Expression<Func<SymbolicExpression, SymbolicExpression, SymbolicExpression, SymbolicExpression, SymbolicExpression, SymbolicExpression>> lambda,
                                                IEnumerable<string>? scalars = null)
    {
        var v = LambdaTranslator.Variables(lambda, scalars);
        return LambdaTranslator.Returned(lambda.Compile()(v[0], v[1], v[2], v[3], v[4]));
    }
}

/// <summary>Translates the body of a lambda over TorchSharp tensors (an expression tree) into the core's Expr.</summary>
internal sealed class LambdaTranslator
{
    const string Supported =
        "Supported: + - * / and unary minus on tensors (numbers, captured numeric locals and Scalars become constants); " +
        "torch.tanh, sigmoid, sin, cos, exp, log, torch.nn.functional.softplus (default beta and threshold), torch.pow(x, number); " +
        "x.tanh(), x.sigmoid(), x.sin(), x.cos(), x.exp(), x.log(), x.neg(), x.pow(number), x.square(), x.sqrt(); " +
        "x.matmul(y), x.mm(y), torch.matmul, torch.mm; x.t(), x.T, x.mT (2-D); x.sum() and x.sum(dim) (keepdim false); " +
        "torch.cat(new[] { a, b }, dim) and torch.cat(new List<Tensor> { a, b }, dim).";

    readonly Dictionary<ParameterExpression, CoreExpr> _variables;

    LambdaTranslator(Dictionary<ParameterExpression, CoreExpr> variables) => _variables = variables;

    /// <summary>One variable per parameter of <paramref name="lambda"/>, named after it.</summary>
    internal static SymbolicExpression[] Variables(LambdaExpression lambda, IEnumerable<string>? scalars)
    {
        ArgumentNullException.ThrowIfNull(lambda);
        var names = lambda.Parameters.Select(p => p.Name ?? "").ToList();
        var repeated = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new ArgumentException($"The lambda's parameters must have distinct names (they become variables); '{repeated.Key}' is repeated.", nameof(lambda));
        var scalarNames = (scalars ?? Enumerable.Empty<string>()).ToList();
        foreach (var s in scalarNames)
            if (!names.Contains(s))
                throw new ArgumentException($"scalars names '{s}', which is not a parameter of the lambda (its parameters: {string.Join(", ", names)}).", nameof(scalars));
        return names.Select(n => scalarNames.Contains(n) ? Symbolic.Scalar(n) : Symbolic.Tensor(n)).ToArray();
    }

    /// <summary>What a lambda over expressions returned, refused when null.</summary>
    internal static SymbolicExpression Returned(SymbolicExpression? result) =>
        result ?? throw new ArgumentException("The lambda returned null instead of an expression.", "lambda");

    /// <summary>The expression of a lambda over tensors.</summary>
    internal static SymbolicExpression Translate(LambdaExpression lambda, IEnumerable<string>? scalars)
    {
        var variables = Variables(lambda, scalars);
        var map = lambda.Parameters.Zip(variables).ToDictionary(pv => pv.First, pv => pv.Second.Value);
        return new SymbolicExpression(new LambdaTranslator(map).Go(lambda.Body));
    }

    static ArgumentException Unsupported(string what) =>
        new($"The lambda uses {what}, which the symbolic layer does not translate. {Supported}", "lambda");

    static string TypeName(Type? t) => t?.FullName?.Replace('+', '.') ?? "?";

    static string Describe(MethodInfo m) => $"the method '{m.Name}' of {TypeName(m.DeclaringType)}";

    CoreExpr Go(Expression e)
    {
        if (e is ParameterExpression p && _variables.TryGetValue(p, out var v)) return v;
        if (!UsesParameter(e)) return CoreExpr.NewConst(Number(e));
        switch (e)
        {
            case BinaryExpression b:
                if (b.Method is not null && b.Method.DeclaringType != typeof(TorchTensor)) throw Unsupported(Describe(b.Method));
                Func<CoreExpr, CoreExpr, CoreExpr> op = b.NodeType switch
                {
                    ExpressionType.Add or ExpressionType.AddChecked => CoreExpr.NewAdd,
                    ExpressionType.Subtract or ExpressionType.SubtractChecked => CoreExpr.NewSub,
                    ExpressionType.Multiply or ExpressionType.MultiplyChecked => CoreExpr.NewMul,
                    ExpressionType.Divide => CoreExpr.NewDiv,
                    _ => throw Unsupported($"the operator {b.NodeType}{(b.Method is null ? "" : $" ({Describe(b.Method)})")}"),
                };
                return op(Go(b.Left), Go(b.Right));
            case UnaryExpression { NodeType: ExpressionType.Negate or ExpressionType.NegateChecked } u:
                return CoreExpr.NewNeg(Go(u.Operand));
            case UnaryExpression { NodeType: ExpressionType.UnaryPlus } u:
                return Go(u.Operand);
            case UnaryExpression { NodeType: ExpressionType.Convert or ExpressionType.ConvertChecked } u
                when u.Type == typeof(TorchTensor) && u.Operand.Type == typeof(TorchTensor):
                return Go(u.Operand);
            case MethodCallExpression c:
                return Call(c);
            case MemberExpression { Member.Name: "T" or "mT", Expression: { } x } when x.Type == typeof(TorchTensor):
                return CoreExpr.NewTranspose(Go(x));
            case MemberExpression m:
                throw Unsupported($"the member '{m.Member.Name}' of {TypeName(m.Member.DeclaringType)}");
            default:
                throw Unsupported($"an expression of node type {e.NodeType} ({e})");
        }
    }

    CoreExpr Call(MethodCallExpression c)
    {
        var m = c.Method;
        Expression receiver;
        IReadOnlyList<Expression> rest;
        if (!m.IsStatic && m.DeclaringType == typeof(TorchTensor))
        {
            receiver = c.Object!;
            rest = c.Arguments;
        }
        else if (m.IsStatic && (m.DeclaringType == typeof(torch) || m.DeclaringType == typeof(torch.nn.functional)))
        {
            if (m.Name == "cat") return Cat(c);
            if (c.Arguments.Count == 0 || c.Arguments[0].Type != typeof(TorchTensor)) throw Unsupported(Describe(m));
            receiver = c.Arguments[0];
            rest = c.Arguments.Skip(1).ToList();
        }
        else throw Unsupported(Describe(m));

        CoreSymbolic.Fn? fn = m.Name switch
        {
            "tanh" => CoreSymbolic.Fn.Tanh, "sigmoid" => CoreSymbolic.Fn.Sigmoid, "sin" => CoreSymbolic.Fn.Sin,
            "cos" => CoreSymbolic.Fn.Cos, "exp" => CoreSymbolic.Fn.Exp, "log" => CoreSymbolic.Fn.Log, _ => null,
        };
        if (fn is not null)
        {
            // torch.nn.functional's forms take an inplace flag; an in-place update is not an expression.
            if (rest.Count == 1 && rest[0].Type == typeof(bool) && Value(rest[0]) is false) rest = Array.Empty<Expression>();
            if (rest.Count != 0) throw Unsupported($"{Describe(m)} with these arguments ({string.Join(", ", rest)})");
            return CoreExpr.NewApply(fn, Go(receiver));
        }
        switch (m.Name, rest.Count)
        {
            case ("neg", 0): return CoreExpr.NewNeg(Go(receiver));
            case ("square", 0): return CoreExpr.NewPow(Go(receiver), 2.0);
            case ("sqrt", 0): return CoreExpr.NewPow(Go(receiver), 0.5);
            case ("t", 0): return CoreExpr.NewTranspose(Go(receiver));
            case ("matmul" or "mm", 1): return CoreExpr.NewMatMul(Go(receiver), Go(rest[0]));
            case ("pow", 1) when rest[0].Type != typeof(TorchTensor):
                return CoreExpr.NewPow(Go(receiver), Number(rest[0]));
            case ("softplus", 0): return CoreExpr.NewApply(CoreSymbolic.Fn.Softplus, Go(receiver));
            case ("softplus", 2):
                // The core evaluates softplus with torch's defaults (beta 1, threshold 20).
                if (Number(rest[0]) != 1.0 || Number(rest[1]) != 20.0)
                    throw Unsupported($"softplus with beta {Number(rest[0])} and threshold {Number(rest[1])} (only beta 1, threshold 20)");
                return CoreExpr.NewApply(CoreSymbolic.Fn.Softplus, Go(receiver));
            case ("sum", _):
                return Sum(m, receiver, rest);
            default:
                throw Unsupported($"{Describe(m)} with {rest.Count} argument(s) ({string.Join(", ", rest)})");
        }
    }

    CoreExpr Sum(MethodInfo m, Expression receiver, IReadOnlyList<Expression> rest)
    {
        var types = rest.Select(a => a.Type).ToArray();
        if (types.Length >= 1 && types[^1] == typeof(torch.ScalarType?) && Value(rest[^1]) is { } type)
            // C# converts the literal 0 to any enum: x.sum(0) calls sum(type: ScalarType.Byte), not a sum over axis 0.
            throw Unsupported($"{Describe(m)} with the result type {type} (x.sum(0) is this overload: the literal 0 converts to " +
                              "ScalarType.Byte; write x.sum(0L) or x.sum(dim: 0) for the sum over axis 0)");
        if (types.Length == 1 && types[0] == typeof(torch.ScalarType?)) return CoreExpr.NewSumAll(Go(receiver));
        if (types.Length == 3 && types[0] == typeof(long) && types[1] == typeof(bool))
        {
            if (Value(rest[1]) is not false) throw Unsupported("a sum with keepdim: true (the summed axis must be dropped)");
            return CoreExpr.NewSumAxis(Go(receiver), Integer(rest[0], "the axis of a sum"));
        }
        throw Unsupported($"{Describe(m)} over several axes or a span of axes (sum over one axis at a time)");
    }

    CoreExpr Cat(MethodCallExpression c)
    {
        var parts = c.Arguments[0] switch
        {
            NewArrayExpression { NodeType: ExpressionType.NewArrayInit } a => a.Expressions.ToList(),
            ListInitExpression l when l.Initializers.All(i => i.Arguments.Count == 1) => l.Initializers.Select(i => i.Arguments[0]).ToList(),
            var other => throw Unsupported($"torch.cat of {other} (write the operands out: new[] {{ a, b }} or new List<Tensor> {{ a, b }})"),
        };
        if (parts.Count == 0) throw Unsupported("torch.cat of no operands");
        var axis = c.Arguments.Count > 1 ? Integer(c.Arguments[1], "the axis of torch.cat") : 0;
        return CoreSymbolic.ExprModule.concat(Microsoft.FSharp.Collections.ListModule.OfSeq(parts.Select(Go)), axis);
    }

    bool UsesParameter(Expression e)
    {
        var finder = new ParameterFinder(_variables);
        finder.Visit(e);
        return finder.Found;
    }

    /// <summary>The value of a sub-tree that uses no parameter (a constant or a captured local), by running it.</summary>
    object? Value(Expression e)
    {
        if (UsesParameter(e)) throw Unsupported($"a value computed from the lambda's parameters ({e}) where a constant is needed");
        if (e is ConstantExpression k) return k.Value;
        return Expression.Lambda<Func<object?>>(Expression.Convert(e, typeof(object))).Compile(preferInterpretation: true)();
    }

    /// <summary>A number from a sub-tree without parameters: a numeric constant, a captured numeric local or a Scalar.</summary>
    double Number(Expression e)
    {
        // A number passed where a Scalar is expected arrives through Scalar's implicit conversion: read the number.
        if (e is UnaryExpression { NodeType: ExpressionType.Convert or ExpressionType.ConvertChecked, Method.Name: "op_Implicit" } u
            && u.Type == typeof(Scalar))
            e = u.Operand;
        return Value(e) switch
        {
            double d => d, float f => f, int i => i, long l => l, short s => s, byte b => b, sbyte sb => sb,
            uint ui => ui, ulong ul => ul, ushort us => us, decimal m => (double)m,
            Scalar s => s.ToDouble(),
            TorchTensor => throw new ArgumentException(
                $"The lambda uses the tensor {Named(e)}, which is not one of its parameters: make it a lambda parameter (a captured tensor cannot become a variable).", "lambda"),
            var other => throw Unsupported($"the value {Named(e)} of type {TypeName(other?.GetType() ?? e.Type)}"),
        };
    }

    int Integer(Expression e, string what)
    {
        var x = Number(e);
        if (x != Math.Floor(x) || Math.Abs(x) > int.MaxValue) throw Unsupported($"{what} {x}, which is not an integer");
        return (int)x;
    }

    static string Named(Expression e) => e is MemberExpression m ? $"'{m.Member.Name}'" : e.ToString();

    sealed class ParameterFinder(Dictionary<ParameterExpression, CoreExpr> parameters) : ExpressionVisitor
    {
        public bool Found { get; private set; }

        public override Expression? Visit(Expression? node) => Found ? node : base.Visit(node);

        protected override Expression VisitParameter(ParameterExpression node)
        {
            if (parameters.ContainsKey(node)) Found = true;
            return node;
        }
    }
}
