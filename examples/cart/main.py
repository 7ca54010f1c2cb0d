"""cart: a shopping cart per key, kept in the key's fx state.

Invoked with a key (the cart id), the function reads the cart from
ctx.state, changes it and writes it back; the change commits with the
invocation's result, and invocations of one key run one at a time in
enqueue order, so nothing is lost or applied twice.  The state is
{"items": {"apple": 2, ...}, "updates": n}, n counting the changes.

    {"add": "apple", "qty": 2}      add 2 apples (qty defaults to 1)
    {"remove": "apple"}             remove every apple
    {"remove": "apple", "qty": 1}   remove one apple
    {"clear": true}                 empty the cart
    {}                              change nothing

Every invocation returns the cart.  Bad args fail it without retries.

    fx deploy cart examples/cart --cmd "python3 main.py" --mode session
    fx invoke cart '{"add":"apple","qty":2}' --key cart-42
    fx psql -c "SELECT fx_state('cart', 'cart-42')"
"""

import fx

EMPTY = {"items": {}, "updates": 0}


def bad(message):
    return fx.Error(message, detail="See examples/cart/README.md.",
                    retryable=False)


def quantity(args):
    qty = args.get("qty", 1)
    if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
        raise bad("qty must be a positive integer")
    return qty


def item_name(args, op):
    name = args[op]
    if not isinstance(name, str) or name == "":
        raise bad('"%s" must name an item' % op)
    return name


def change(items, args):
    """Apply args to items; return whether anything was asked to change."""
    if args.get("clear") is True:
        items.clear()
    elif "add" in args:
        name = item_name(args, "add")
        items[name] = items.get(name, 0) + quantity(args)
    elif "remove" in args:
        name = item_name(args, "remove")
        had = items.pop(name, 0)
        if "qty" in args and had > quantity(args):
            items[name] = had - quantity(args)
    else:
        return False
    return True


def cart(args, ctx):
    if ctx.key is None:
        raise bad("cart needs a key: the cart id, e.g. --key cart-42")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise bad("args must be an object")
    state = ctx.state.get() or EMPTY
    items = dict(state["items"])
    if change(items, args):
        state = {"items": items, "updates": state["updates"] + 1}
        ctx.state.set(state)
    return state


if __name__ == "__main__":
    fx.run(cart)
