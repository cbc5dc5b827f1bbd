// The order page's card payment, the one script on IPX's pages: Stripe's card form must run in the buyer's
// browser so that the card number goes to Stripe and never through IPX.
//
// Pay: ask IPX for a card setup (a SetupIntent for this order), let Stripe.js save the card into it, then send
// the setup's reference with the page's own form; IPX charges the card from its server under the order's locks
// (ipx/marketplace/service.py, pay_order_with_card). Confirm: when the bank wants the buyer to authenticate the
// charge, Stripe.js shows its challenge, then the form asks IPX to look the payment up (settle_order).
(function () {
  "use strict";

  function say(form, message, {problem = false} = {}) {
    const status = form.querySelector("[data-card-status]");
    status.textContent = message;
    status.className = problem ? "field-error" : "hint";  // progress reads as a hint, a refusal as an error
    status.hidden = false;
  }

  const STRIPE_MISSING = "Stripe's card form could not be loaded (a content blocker, or no connection to Stripe). " +
    "Reload the page to try again.";

  async function cardSetupSecret(url) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", headers: {Accept: "application/json"},
    });
    if (response.redirected) {  // the session ended: the request was sent on to the log-in page
      throw new Error("You are no longer logged in. Reload the page and log in again to pay.");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok || !body.client_secret) {
      throw new Error(body.detail || `The payment could not be started (HTTP ${response.status}); please try again.`);
    }
    return body.client_secret;
  }

  const payForm = document.getElementById("ipx-card-form");
  if (payForm && !window.Stripe) {
    say(payForm, STRIPE_MISSING, {problem: true});
    payForm.addEventListener("submit", (event) => event.preventDefault());
  } else if (payForm) {
    const stripe = window.Stripe(payForm.dataset.stripeKey);
    const card = stripe.elements().create("card");
    card.mount("#ipx-card-element");
    const button = payForm.querySelector("button[type=submit]");
    payForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      say(payForm, "Sending your card to Stripe…");
      try {
        const secret = await cardSetupSecret(payForm.dataset.setupUrl);
        const result = await stripe.confirmCardSetup(secret, {payment_method: {card: card}});
        if (result.error) {
          throw new Error(result.error.message || "Stripe could not use this card.");
        }
        payForm.elements.setup_intent.value = result.setupIntent.id;
        say(payForm, "Charging your card…");
        payForm.submit();
      } catch (error) {
        say(payForm, error.message || String(error), {problem: true});
        button.disabled = false;
      }
    });
  }

  const confirmForm = document.getElementById("ipx-card-authenticate");
  if (confirmForm && !window.Stripe) {
    say(confirmForm, STRIPE_MISSING, {problem: true});
  } else if (confirmForm) {
    const stripe = window.Stripe(confirmForm.dataset.stripeKey);
    // Whatever the bank answers, IPX asks Stripe how the payment stands and shows the order accordingly.
    stripe.confirmCardPayment(confirmForm.dataset.clientSecret)
      .catch(() => null)
      .then(() => confirmForm.submit());
  }
})();
