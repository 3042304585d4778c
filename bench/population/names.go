package population

// Names are common in South African clubs; with thousands of people per
// club some share a name, as members do.
var firstNames = []string{
	"Aaliyah", "Abigail", "Adam", "Aiden", "Alex", "Amahle", "Amy", "Andile", "Andrew", "Anele",
	"Anna", "Anthony", "Ava", "Ayanda", "Ben", "Bongani", "Brandon", "Caitlin", "Cameron", "Carla",
	"Charl", "Chloe", "Chris", "Claire", "Daniel", "Danielle", "David", "Dineo", "Dylan", "Emily",
	"Emma", "Ethan", "Faith", "Francois", "Gareth", "Grace", "Hannah", "Hendrik", "Imran", "Isabella",
	"Jabu", "Jacques", "James", "Jan", "Jane", "Jason", "Jessica", "Johan", "John", "Jordan",
	"Joshua", "Karabo", "Katlego", "Keith", "Kevin", "Kyle", "Lara", "Lauren", "Lebo", "Lerato",
	"Liam", "Lindiwe", "Lisa", "Luke", "Lwazi", "Marc", "Maria", "Mark", "Matthew", "Megan",
	"Michael", "Mia", "Mpho", "Naledi", "Nathan", "Neo", "Nicole", "Nomsa", "Olivia", "Palesa",
	"Paul", "Peter", "Pieter", "Priya", "Rachel", "Refilwe", "Riaan", "Robert", "Ruan", "Sarah",
	"Sean", "Sibusiso", "Simon", "Sipho", "Sophie", "Stefan", "Tebogo", "Thabo", "Themba", "Thomas",
	"Tumi", "Tyler", "Werner", "William", "Yusuf", "Zanele", "Zoe", "Zola", "Gerhard", "Ilse",
}

var lastNames = []string{
	"Abrahams", "Adams", "Bester", "Botha", "Brown", "Buthelezi", "Coetzee", "Daniels", "Davids", "De Beer",
	"De Klerk", "De Villiers", "Dlamini", "Du Plessis", "Du Toit", "Engelbrecht", "Erasmus", "Ferreira", "Fourie", "Gouws",
	"Govender", "Hendricks", "Jacobs", "Jansen", "Joubert", "Khan", "Khumalo", "Kruger", "Le Roux", "Louw",
	"Mabaso", "Mahlangu", "Marais", "Mathebula", "Meyer", "Mkhize", "Mokoena", "Molefe", "Moodley", "Mthembu",
	"Naidoo", "Ndlovu", "Nel", "Ngcobo", "Nkosi", "Olivier", "Pillay", "Pretorius", "Reddy", "Robinson",
	"Scott", "Shezi", "Sithole", "Smit", "Smith", "Steyn", "Swanepoel", "Taylor", "Van der Merwe", "Van Wyk",
	"Van Zyl", "Venter", "Vermeulen", "Viljoen", "Visser", "Williams", "Wilson", "Zulu", "Zwane", "Nkuna",
	"O'Brien", "Ramaphosa", "Singh", "Chetty", "Maharaj", "Petersen", "Lombard", "Strydom", "Theron", "Wessels",
}

// domains are personal mail providers and employers; never a club's own
// domain (its role addresses are shared) nor a blocked one.
var domains = []string{
	"gmail.com", "outlook.com", "yahoo.co.za", "icloud.com", "mweb.co.za", "telkomsa.net",
	"webmail.co.za", "vodamail.co.za", "hotmail.com", "absa.co.za", "discovery.co.za", "fnb.co.za",
}

var competitions = []string{
	"Club Championship", "Monthly Medal", "Summer Stableford", "Winter Fourball", "Captain's Day", "President's Cup",
	"Mixed Foursomes", "Seniors Open", "Junior Open", "Charity Day", "Greensomes", "Eclectic",
}
