"""What the parties are told, in plain words; `{site}` becomes the deployment's public URL on delivery."""

from __future__ import annotations

from ipx.complaints.models import Complaint
from ipx.notifications.service import SITE

SIGN_OFF = "\n\n— IPX trust & safety\n"


def _target(complaint: Complaint) -> str:
    if complaint.target_kind == "url":
        return f"the page {complaint.target_url}"
    if complaint.target_kind == "listing":
        return f"the listing {complaint.target_listing_id}"
    return f"the registered work {SITE}/works/{complaint.target_work_id}"


def receipt(complaint: Complaint, token: str) -> tuple[str, str]:
    return (
        f"[{complaint.case_number}] We received your infringement notice",
        f"Dear {complaint.complainant_name},\n\nyour notice about {_target(complaint)} is case "
        f"{complaint.case_number}. Follow it, and report legal action if a counter-notice is filed, at:\n\n"
        f"  {SITE}/complaints/{complaint.id}?token={token}\n\nKeep this link private: it is your key to the case."
        + SIGN_OFF,
    )


def notice_to_owner(complaint: Complaint) -> tuple[str, str]:
    return (
        f"[{complaint.case_number}] An infringement notice names your content",
        f"{complaint.complainant_name} says that {_target(complaint)} infringes their registered work "
        f"{SITE}/works/{complaint.claimed_work_id}.\n\nTheir description:\n{complaint.description}\n\n"
        f"Staff will review the evidence. See the case at {SITE}/complaints/{complaint.id}" + SIGN_OFF,
    )


TITLES = {
    "dismiss": "Notice dismissed",
    "request_info": "More information needed",
    "hide_listing": "Listing hidden",
    "suspend_sales": "Sales suspended",
    "mark_disputed": "Work marked disputed",
    "restore": "Content restored",
    "clear_flag": "Flag cleared",
    "restored_after_counter_notice": "Content restored after counter-notice",
    "counter_notice": "Counter-notice filed",
    "legal_action": "Legal action reported",
}


def action_taken(complaint: Complaint, action: str, reason: str, *, to_owner: bool) -> tuple[str, str]:
    what = {
        "dismiss": "The notice was dismissed.",
        "request_info": "Staff need more information from the complainant before deciding.",
        "hide_listing": "The listing was hidden from the marketplace.",
        "suspend_sales": "Sales of the work were suspended.",
        "mark_disputed": "The work is now shown as disputed on its certificate (its registration is unchanged).",
        "restore": "The content was restored.",
        "clear_flag": "Staff found no infringement and cleared the flag.",
        "restored_after_counter_notice": "The content was restored: the counter-notice period ended without "
        "a report of legal action.",
        "counter_notice": "The owner filed a counter-notice.",
        "legal_action": "The complainant reported legal action; the content stays down.",
    }[action]
    extra = ""
    if to_owner and action in ("hide_listing", "suspend_sales", "mark_disputed"):
        extra = (
            f"\n\nIf you believe this is a mistake, you may file a counter-notice at "
            f"{SITE}/complaints/{complaint.id}/counter-notice"
        )
    if not to_owner and action == "counter_notice" and complaint.restore_due_at is not None:
        extra = (
            f"\n\nThe content will be restored after {complaint.restore_due_at:%Y-%m-%d %H:%M} UTC unless you report "
            "that you have filed an action seeking a court order, using the link in your first message."
        )
    return (
        f"[{complaint.case_number}] {TITLES[action]}",
        f"Case {complaint.case_number}: {what}\n\nReason: {reason}{extra}" + SIGN_OFF,
    )


def similar_work_alert(prior_work_id: str, prior_title: str, new_work_id: str, method: str) -> tuple[str, str]:
    return (
        f"A work similar to “{prior_title}” was registered",
        f"A new registration matches your work “{prior_title}” ({method} match):\n\n"
        f"  yours: {SITE}/works/{prior_work_id}\n  new:   {SITE}/works/{new_work_id}\n\n"
        "If it copies your work without permission, open a notice in one click (pre-filled):\n\n"
        f"  {SITE}/complaints/new?work_id={prior_work_id}&infringing_work_id={new_work_id}\n\n"
        "Staff review every flagged registration; you do not need to act if it is authorized." + SIGN_OFF,
    )


def review_decided(work_id: str, decision: str, reason: str) -> tuple[str, str]:
    verdict = "cleared: no copying was found" if decision == "cleared" else "upheld: it matches an earlier work"
    return (
        f"Review of your registration: {decision}",
        f"The similarity flag on {SITE}/works/{work_id} was {verdict}.\n\nReason: {reason}" + SIGN_OFF,
    )
