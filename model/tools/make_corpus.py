#!/usr/bin/python3
"""Deterministic synthetic English corpus for Sluice's bundled tiny model.

All text comes from the small grammar in this file (word lists plus sentence
templates about rivers, locks, sluices, boats, weather, towns, queues and
messages).  No external data is used.  The same seed always gives the same
documents, byte for byte.

Template syntax: ``{name}`` expands the nonterminal ``name`` (a random
alternative, expanded recursively).  ``{NAME}`` in capitals is a per-document
binding (the town, the river, the keeper ...) so a document keeps talking
about the same things.  ``a``/``an`` is fixed up after expansion.

Usage (from the repository root):
    /usr/bin/python3 model/tools/make_corpus.py --docs 200 --out /tmp/corpus.txt
"""

import argparse
import random
import re

# --------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------

WORDS = {
    "town": """Aldermere Brackwater Coldharbour Dunmore Eastwick Fenby Greyford
        Hollowmere Ironbridge Kingsmill Lowmarsh Millbrook Northgate Oakham
        Pennyford Quarry End Redwater Saltash Thornbury Upwell Westmere Yarrow
        Ashby Bramley Cresswell Dovecote Elmstead Fairholme Glenmoor Harrowden""",
    "river": """Wend Ouse Tamsin Calder Lune Brede Isel Medlow Sollen Tarrow Avel
        Dorrin Fennel Grail Hollin Kesh Lyde Marrow Nene Orrin""",
    "keeper": """Ada Bram Clara Daniel Edith Felix Greta Hugo Iris Jonas Kira Leo
        Mara Nils Olga Peter Rosa Simon Tilda Victor Wren Agnes Bertie Cora
        Dora Ezra Flora Gideon Hazel Ivo""",
    "boatname": """Heron Kingfisher Morning Star Patience Little Otter Silver Eel
        Grey Goose Good Intent Swallow Endeavour Willow Brave Lark Mayfly
        Evening Bell Three Sisters Perseverance Water Rail Plover Merlin""",
    "cargo": """coal grain timber bricks wool salt apples flour stone sand slate
        cider barley potatoes hay iron pottery cloth lime oats tea""",
    "boat": """barge narrowboat ferry tug skiff steamer canoe dinghy houseboat
        lighter punt keelboat""",
    "bird": """heron kingfisher swan duck moorhen gull swallow cormorant goose
        coot wagtail""",
    "fish": """trout pike perch eel carp roach salmon chub""",
    "tree": """willow alder oak ash poplar elm birch hawthorn""",
    "weekday": """Monday Tuesday Wednesday Thursday Friday Saturday Sunday""",
    "month": """January February March April May June July August September
        October November December""",
    "season": """spring summer autumn winter""",
    "colour": """grey green brown blue silver dark pale golden black white""",
    "smalladj": """small old narrow quiet busy long wide deep shallow slow heavy
        new wooden stone""",
    "feeling": """calm tired glad patient careful cheerful anxious content
        curious""",
    "building": """mill inn chapel warehouse bakery post office boathouse
        granary school toll house""",
    "topicname": """orders letters tickets readings events alerts payments
        requests logs updates""",
    "servicename": "",
}

# Entries of more than one word are listed here (and removed from the text
# above before it is split on whitespace).
MULTI = {
    "town": ["Quarry End"],
    "boatname": ["Morning Star", "Little Otter", "Silver Eel", "Grey Goose",
                 "Good Intent", "Evening Bell", "Three Sisters", "Water Rail"],
    "building": ["post office", "toll house"],
    "servicename": ["the gatekeeper", "the ledger", "the dispatcher",
                    "the harbour office", "the tally clerk",
                    "the signal box", "the lock office"],
}


def _split_words(name, text):
    multi = MULTI.get(name, [])
    for m in multi:
        text = text.replace(m, " ")
    return multi + text.split()


LISTS = {k: _split_words(k, v) for k, v in WORDS.items()}

# --------------------------------------------------------------------------
# Grammar (nonterminal -> alternatives)
# --------------------------------------------------------------------------

G = {
    # ---- shared phrases ------------------------------------------------
    "time": [
        "in the morning", "at dawn", "by noon", "in the evening", "at night",
        "on {weekday}", "in {season}", "before sunrise", "after the storm",
        "later that day", "early on {weekday}", "in late {month}",
        "at first light", "towards dusk", "on a {colour} morning",
        "every morning", "each evening", "in the middle of the night",
        "some days later", "at the end of {month}",
    ],
    "Time": ["{time}"],
    "number": ["two", "three", "four", "five", "six", "seven", "eight",
               "nine", "ten", "twelve", "twenty", "forty", "a hundred"],
    "digits": ["{d}", "{d}{d}", "{d}{d}", "{d}{d}{d}"],
    "d": list("0123456789"),
    "clock": ["{h}:{m}"],
    "h": [str(i) for i in range(1, 13)],
    "m": ["00", "05", "10", "15", "20", "30", "40", "45", "50"],
    "water": ["the water", "the river", "the current", "the stream",
              "the flood", "the tide"],
    "place": ["the lock", "the weir", "the bridge", "the quay", "the wharf",
              "the mill", "the bend", "the ford", "the harbour",
              "the towpath", "the basin", "the sluice", "the jetty",
              "the old {building}"],
    "person": ["the keeper", "{KEEPER}", "the miller", "the ferryman",
               "the boatman", "a child", "the old woman", "the postman",
               "the bargemaster", "a stranger", "the clerk", "the baker",
               "{FRIEND}", "the lock keeper", "a fisherman"],
    "people": ["the boatmen", "the children", "the townsfolk", "the carters",
               "the millers", "the fishermen", "the crew", "the passengers",
               "the clerks", "the travellers"],
    "said": ["said", "called", "replied", "answered", "shouted",
             "whispered", "laughed"],
    "boatref": ["the {BOAT}", "the {boat}", "the {smalladj} {boat}",
                "the {BOATNAME}", "a {smalladj} {boat}",
                "a {boat} loaded with {cargo}", "the {colour} {boat}"],
    "movesw": ["flowed", "ran", "moved", "slid", "rushed", "turned",
               "swirled", "rose", "fell", "crept"],
    "adv": ["slowly", "quickly", "quietly", "steadily", "gently", "at last",
            "again", "once more", "without a sound", "with a groan"],
    "sky": ["the sky was {colour}", "clouds gathered over {TOWN}",
            "the sun came out", "a cold wind blew from the {dir}",
            "rain fell on the roofs", "mist hung over {water}",
            "the air was still", "thunder rolled over the hills",
            "snow lay on the towpath", "the stars were bright"],
    "dir": ["north", "south", "east", "west", "hills", "sea"],
    "speech": [
        "The gate is open", "The water is rising", "Hold the rope",
        "Wait for the lock to fill", "We will be late again",
        "The river is high today", "Close the paddles", "Mind the sill",
        "There is a storm coming", "The queue is long this morning",
        "Send the message now", "Every letter finds its way",
        "Let the water out slowly", "Keep the boat away from the weir",
        "The {cargo} must reach {TOWN} by {weekday}",
        "Nothing moves until the gates are shut",
        "Take the next message", "One at a time",
        "The level is falling", "We have {number} boats waiting",
    ],
    "Speech": ["{speech}"],

    # ---- rivers --------------------------------------------------------
    "river_s": [
        "The {RIVER} {movesw} {adv} past {TOWN}.",
        "{Time}, the {RIVER} was {colour} and {riveradj}.",
        "Below the {tree} trees, {water} {movesw} {adv}.",
        "The river {RIVER} rises in the hills above {TOWN2} and runs to the sea.",
        "Along the banks of the {RIVER}, {bird}s waited for {fish}.",
        "A {bird} stood in the shallows near {place}.",
        "{Time}, {water} was {riveradj} and the banks were {wetdry}.",
        "The {RIVER} bends twice before it reaches {TOWN}.",
        "Where the {RIVER} meets the {RIVER2}, the water is {riveradj}.",
        "In {season} the {RIVER} {seasondo}.",
        "Children threw stones into the {RIVER} from the bridge.",
        "The old {tree} leaned over the water by {place}.",
        "{Time}, the river carried leaves and branches down to {place}.",
        "Nobody could remember the {RIVER} so {riveradj}.",
        "Fishermen say the {fish} are best below {place}.",
        "The towpath follows the {RIVER} for {number} miles.",
        "{Time}, {water} {movesw} over the stones.",
        "Each year the {RIVER} floods the meadows below {TOWN}.",
        "The river was {riveradj}, and {sky}.",
        "From the bridge at {TOWN} you can see the {RIVER} for miles.",
        "The {RIVER} is {riveradj} in {season} and {riveradj} in {season}.",
        "A {fish} jumped, and rings spread across the water.",
        "The water level on the {RIVER} was {digits} inches above the mark.",
    ],
    "riveradj": ["high", "low", "calm", "swift", "muddy", "clear", "cold",
                 "wide", "brown", "quiet", "dark", "full", "shallow"],
    "wetdry": ["wet", "dry", "muddy", "green", "flooded", "frozen"],
    "seasondo": ["runs fast with melted snow", "is low and warm",
                 "is full of leaves", "freezes at the edges",
                 "is busy with boats", "floods the fields"],

    # ---- locks ---------------------------------------------------------
    "lock_s": [
        "{Time}, {KEEPER} opened the lock at {TOWN}.",
        "The lock at {TOWN} has {number} gates and a {smalladj} chamber.",
        "{KEEPER} pushed the balance beam and the gate swung open.",
        "The keeper wound the paddles and the water began to rise.",
        "When the chamber was full, {boatref} moved in {adv}.",
        "The lower gates were closed, and {water} filled the chamber.",
        "{KEEPER} has kept the lock at {TOWN} for {number} years.",
        "A boat must wait while the lock fills.",
        "The lock rose {number} feet in a few minutes.",
        "{Time}, {number} boats were waiting below the lock.",
        "The keeper wrote the name of each boat in the lock book.",
        "{KEEPER} lives in the lock cottage beside the {RIVER}.",
        "The gates of the lock creaked as they opened.",
        "The lock emptied {adv}, and the boat sank with the water.",
        "Only one boat at a time could pass through the lock.",
        "{BOATNAME} was the first boat through the lock {time}.",
        "The keeper checked the sill before the boat went in.",
        "At the top of the lock, the water was calm again.",
        "The boats passed the lock in the order they arrived.",
        "{KEEPER} closed the top gates and opened the bottom paddles.",
        "Water poured through the paddles with a roar.",
        "The lock book showed {digits} boats in {month}.",
        "{KEEPER} said the lock was the oldest on the {RIVER}.",
        "Nobody may open both gates of the lock at once.",
        "The chamber filled {adv} and the boat rose with it.",
        "The keeper waved, and {boatref} left the lock.",
    ],

    # ---- sluices, weirs, mills ------------------------------------------
    "sluice_s": [
        "The sluice gate at {TOWN} controls the water for the mill.",
        "{Time}, the miller opened the sluice.",
        "When the sluice was raised, {water} {movesw} into the mill race.",
        "The sluice holds back the {RIVER} when the river is high.",
        "{KEEPER} lowered the sluice {adv} to keep the level steady.",
        "Water poured over the weir and foamed below.",
        "The mill wheel turned {adv} as the water ran under it.",
        "The weir at {TOWN} is {number} feet high.",
        "If the sluice is closed too fast, the water backs up.",
        "The miller watched the level and opened the sluice a little more.",
        "Behind the sluice, the water lay still and deep.",
        "The old sluice was made of oak and iron.",
        "Every sluice on the {RIVER} was opened before the flood.",
        "{Time}, the sluice keeper measured the water at the gauge.",
        "The sluice lets water through a little at a time.",
        "A sluice is a gate that holds water back and lets it go in order.",
        "The mill ground {cargo} all day while the sluice stood open.",
        "When the sluice opened, the water level dropped {digits} inches.",
        "The sluice creaked, and {water} began to move.",
        "The miller closed the sluice and the wheel stopped.",
    ],

    # ---- boats ---------------------------------------------------------
    "boat_s": [
        "{boatref} {boatdo} {adv}.",
        "{Time}, the {BOATNAME} left {TOWN} with a load of {cargo}.",
        "The {BOATNAME} carried {cargo} from {TOWN} to {TOWN2}.",
        "The crew of the {BOATNAME} were {feeling} and tired.",
        "{FRIEND} steered the {BOAT} round the bend.",
        "The {BOAT} was {smalladj} and painted {colour}.",
        "{Time}, a {boat} came down the {RIVER} towards {place}.",
        "The horse walked on the towpath and pulled the {BOAT}.",
        "It took {number} days to carry the {cargo} to {TOWN2}.",
        "The {BOATNAME} tied up at {place} for the night.",
        "{FRIEND} threw a rope to the keeper.",
        "The {boat} was low in the water under its load of {cargo}.",
        "Boats from {TOWN} carried {cargo} and {cargo} down the {RIVER}.",
        "The ferry crossed the {RIVER} {number} times a day.",
        "The skipper of the {BOATNAME} was called {FRIEND}.",
        "{Time}, the {BOAT} waited its turn below {place}.",
        "The empty {boat} rode high on the water.",
        "Ropes, poles and a lamp lay on the deck of the {BOAT}.",
        "At {TOWN2}, the {cargo} was unloaded onto the wharf.",
        "The {BOATNAME} had carried {cargo} for {number} years.",
    ],
    "boatdo": ["passed under the bridge", "came into the lock",
               "drifted towards the bank", "moved up the river",
               "turned into the basin", "waited by the quay",
               "pulled away from the jetty", "went down with the current"],

    # ---- weather -------------------------------------------------------
    "weather_s": [
        "{Time}, {sky}.",
        "{Time}, {sky}, and {water} {movesw} {adv}.",
        "The wind turned and {sky}.",
        "It rained for {number} days and the {RIVER} rose.",
        "The morning was {colour} and cold, and {sky}.",
        "By {clock} the rain had stopped.",
        "A storm came up the valley from the {dir}.",
        "The fog was so thick that no boat could move.",
        "In {season} the weather at {TOWN} is {weatheradj}.",
        "{Time}, the weather was {weatheradj} and the water was {riveradj}.",
        "The wind blew hard across the water.",
        "When the sun came out, the towpath began to dry.",
        "Ice formed along the edges of the {RIVER}.",
        "The weather was {weatheradj}, so the boats stayed in the basin.",
        "After the rain, the sky over {TOWN} was clear.",
    ],
    "weatheradj": ["wet", "mild", "cold", "stormy", "fine", "grey",
                   "windy", "warm", "foggy", "bright"],

    # ---- towns ---------------------------------------------------------
    "town_s": [
        "{TOWN} is a {smalladj} town on the {RIVER}.",
        "The market at {TOWN} is held every {weekday}.",
        "{TOWN} has a {building}, a {building} and a stone bridge.",
        "People in {TOWN} still talk about the great flood.",
        "The road from {TOWN} to {TOWN2} follows the river.",
        "{Time}, the streets of {TOWN} were {townadj}.",
        "The {building} at {TOWN} stands beside the water.",
        "{TOWN} grew because of the river trade.",
        "There were {number} inns in {TOWN} when the canal was busy.",
        "{people} of {TOWN} gathered at the quay.",
        "The bell of the chapel rang over {TOWN}.",
        "From {TOWN} it is {number} miles to {TOWN2} by water.",
        "{TOWN} sent {cargo} to the coast every {season}.",
        "The bridge at {TOWN} has {number} arches.",
        "The town of {TOWN} lies between the hills and the {RIVER}.",
    ],
    "townadj": ["quiet", "busy", "wet", "crowded", "empty", "bright",
                "muddy", "noisy"],

    # ---- queues and messages (the Kafka-flavoured part) ---------------
    "queue_s": [
        "The queue held {number} messages.",
        "Each message waited its turn in the queue.",
        "A producer sent {number} messages to the {topicname} topic.",
        "The consumer read the next message from partition {d}.",
        "Messages are kept in order within a partition.",
        "{Time}, the queue was {queueadj}.",
        "The message at offset {digits} was read by the consumer.",
        "When the consumer fell behind, the queue grew longer.",
        "{servicename} took the first message from the queue.",
        "Every request waits in the queue until a worker is free.",
        "The broker stored the messages and sent them on in order.",
        "The {topicname} topic has {number} partitions.",
        "A worker took a batch of {number} requests from the queue.",
        "The queue is like a lock: one message at a time, in order.",
        "Messages flow through the queue like water through a sluice.",
        "The consumer committed offset {digits} and moved on.",
        "{Time}, {digits} messages were waiting for {servicename}.",
        "If the worker stops, the messages wait in the queue.",
        "The reply was sent back on the {topicname} topic.",
        "Each request has a key, and the key chooses the partition.",
        "The queue was {queueadj}, so the workers {queuedo}.",
        "A message was sent at {clock} and answered at {clock}.",
        "The worker read the message, did the work and sent the answer.",
        "No message was lost, and none was read twice.",
        "The batch was full, so the producer sent it at once.",
        "The messages from {TOWN} arrived in the {topicname} queue.",
        "When the queue was empty, the workers waited.",
        "{KEEPER} watched the queue grow and added another worker.",
    ],
    "queueadj": ["empty", "long", "short", "full", "quiet", "busy",
                 "growing", "slow"],
    "queuedo": ["waited", "worked faster", "took larger batches",
                "rested", "kept up", "fell behind"],

    # ---- letters and the post -----------------------------------------
    "letter_s": [
        "The postman carried letters from {TOWN} to {TOWN2}.",
        "{Time}, a letter arrived for {KEEPER}.",
        "The letter said that the {BOATNAME} would arrive on {weekday}.",
        "{KEEPER} wrote a letter to {FRIEND} in {TOWN2}.",
        "Letters for the boats were left at the lock cottage.",
        "The message was short: the {cargo} was ready.",
        "A boy ran to the quay with a message for the skipper.",
        "The post came by boat when the roads were flooded.",
        "{FRIEND} read the letter twice and put it in a drawer.",
        "Every message from {TOWN} was written in the same neat hand.",
        "The letter was dated the {digits}th of {month}.",
        "{KEEPER} sent a message up the river to warn the mill.",
        "By the time the message reached {TOWN2}, the water had fallen.",
        "The clerk sorted the letters by town and by boat.",
    ],

    # ---- people and dialogue ------------------------------------------
    "people_s": [
        "\"{Speech},\" {said} {KEEPER}.",
        "\"{Speech},\" {said} {FRIEND}.",
        "\"{Speech}!\" {said} {person}.",
        "{KEEPER} looked at the water and said, \"{Speech}.\"",
        "{FRIEND} asked {KEEPER} how long the wait would be.",
        "{KEEPER} was {feeling} and kept watch over {place}.",
        "{person} walked along the towpath to {place}.",
        "{people} waited by {place} {time}.",
        "{KEEPER} and {FRIEND} drank tea in the lock cottage.",
        "{person} counted the boats as they passed.",
        "{KEEPER} had a {colour} coat and a lantern.",
        "{Time}, {person} came down to {place}.",
        "{FRIEND} had worked on the {RIVER} since childhood.",
        "{person} told a story about the great flood at {TOWN}.",
        "{KEEPER} smiled and said nothing.",
    ],

    # ---- titles --------------------------------------------------------
    "title": [
        "The Lock at {TOWN}", "A Day on the {RIVER}", "The Sluice",
        "Notes from {TOWN}", "The {BOATNAME}", "Weather Report for {TOWN}",
        "The Queue", "Letters from {TOWN}", "{KEEPER} and the River",
        "Messages in Order", "The Mill at {TOWN}", "High Water",
        "A Journey to {TOWN2}", "The Keeper's Book",
    ],
}

TOPICS = ["river_s", "lock_s", "sluice_s", "boat_s", "weather_s", "town_s",
          "queue_s", "letter_s", "people_s"]
TOPIC_WEIGHTS = [3, 4, 3, 3, 2, 2, 3, 2, 3]

for _k, _v in LISTS.items():
    G.setdefault(_k, _v)

_SLOT = re.compile(r"\{([A-Za-z_0-9]+)\}")


def _expand(rng, text, bind, depth=0):
    def repl(m):
        name = m.group(1)
        if name in bind:
            return bind[name]
        if depth > 8:
            raise ValueError("grammar too deep at " + name)
        alt = rng.choice(G[name])
        return _expand(rng, alt, bind, depth + 1)
    return _SLOT.sub(repl, text)


def _fix(sentence):
    sentence = re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", sentence)
    return sentence[0].upper() + sentence[1:]


def _bindings(rng):
    towns = rng.sample(LISTS["town"], 2)
    rivers = rng.sample(LISTS["river"], 2)
    keepers = rng.sample(LISTS["keeper"], 2)
    return {
        "TOWN": towns[0], "TOWN2": towns[1],
        "RIVER": rivers[0], "RIVER2": rivers[1],
        "KEEPER": keepers[0], "FRIEND": keepers[1],
        "BOAT": rng.choice(LISTS["boat"]),
        "BOATNAME": rng.choice(LISTS["boatname"]),
    }


def make_document(rng):
    bind = _bindings(rng)
    main = rng.choices(TOPICS, TOPIC_WEIGHTS)[0]
    paragraphs = []
    used = set()
    if rng.random() < 0.2:
        paragraphs.append(_expand(rng, rng.choice(G["title"]), bind))
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        sents = []
        for _ in range(rng.randint(2, 6)):
            topic = main if rng.random() < 0.7 else rng.choice(TOPICS)
            template = rng.choice(G[topic])
            if template in used:  # one more draw avoids most repeats
                template = rng.choice(G[topic])
            used.add(template)
            sents.append(_fix(_expand(rng, template, bind)))
        paragraphs.append(" ".join(sents))
    return "\n\n".join(paragraphs)


def make_corpus(num_docs, seed=1234):
    """Returns a list of documents (strings). Deterministic for a seed."""
    rng = random.Random(seed)
    return [make_document(rng) for _ in range(num_docs)]


def count_templates():
    return sum(len(v) for v in G.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="-")
    args = ap.parse_args()
    docs = make_corpus(args.docs, args.seed)
    text = "\n<|endoftext|>\n".join(docs)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote %d docs, %d chars, %d grammar entries to %s"
              % (len(docs), len(text), count_templates(), args.out))


if __name__ == "__main__":
    main()
